// Subgroup matrices, emulated: the operations of subgroup_matrix_native.wgsl with the meaning the
// WGSL definitions give them (Dawn's docs/dawn/features/subgroup_matrix.md), built from private
// arrays and workgroup memory, so that an adapter without subgroup matrices (lavapipe) runs the same
// kernel text and a CPU test can check what the tensor-core kernel computes.
//   - A "subgroup" is SGM_SUBGROUP_SIZE consecutive invocations (local_invocation_index / size).
//   - Shapes: left M×K, right K×N, result M×N (SGM_M/N/K, an adapter config or the default 16×16×16).
//   - A matrix is a value: each lane holds elements e = lane + j*SGM_SUBGROUP_SIZE of its row-major
//     enumeration, e = row * columns + column (the hardware's distribution is opaque; any will do).
//   - Load/store: element [r, c] is p[offset + r * stride + c] row-major, p[offset + c * stride + r]
//     column-major, the definition of subgroupMatrixLoad/Store.
//   - Multiply-accumulate: f16 operands, products exact in f32 (11 + 11 significant bits), summed in
//     f32 onto acc in k order. The hardware's summation order is unspecified, so results agree with
//     it to f32 rounding, not bit for bit.
// Multiply-accumulate gathers a subgroup's operands in workgroup memory between two barriers, so every
// operation must be called in workgroup-uniform control flow (the native kernel does so anyway).
// The including kernel declares SGM_SUBGROUPS and the aliases SgmLeftSource, SgmRightSource,
// SgmResultTarget (see subgroup_matrix_native.wgsl).
enable f16;

const SGM_M: u32 = 16u;
const SGM_N: u32 = 16u;
const SGM_K: u32 = 16u;
const SGM_SUBGROUP_SIZE: u32 = 32u;

const SGM_LEFT_LEN: u32 = SGM_M * SGM_K;
const SGM_RIGHT_LEN: u32 = SGM_K * SGM_N;
const SGM_RESULT_LEN: u32 = SGM_M * SGM_N;
// elements per lane, rounded up (a lane past the end holds nothing in its last slot)
const SGM_LEFT_PER: u32 = (SGM_LEFT_LEN + SGM_SUBGROUP_SIZE - 1u) / SGM_SUBGROUP_SIZE;
const SGM_RIGHT_PER: u32 = (SGM_RIGHT_LEN + SGM_SUBGROUP_SIZE - 1u) / SGM_SUBGROUP_SIZE;
const SGM_RESULT_PER: u32 = (SGM_RESULT_LEN + SGM_SUBGROUP_SIZE - 1u) / SGM_SUBGROUP_SIZE;

struct SgmLeft { v: array<f16, SGM_LEFT_PER> }
struct SgmRight { v: array<f16, SGM_RIGHT_PER> }
struct SgmResult { v: array<f32, SGM_RESULT_PER> }

struct SgmInvocation {
  @builtin(local_invocation_index) index: u32,
}

var<private> sgm_lane: u32;
var<private> sgm_subgroup: u32;
// each subgroup's operands, row-major, while a multiply-accumulate reads them
var<workgroup> sgm_left_x: array<f16, SGM_SUBGROUPS * SGM_LEFT_LEN>;
var<workgroup> sgm_right_x: array<f16, SGM_SUBGROUPS * SGM_RIGHT_LEN>;

/** Call first; returns the invocation's subgroup within the workgroup. */
fn sgmBegin(inv: SgmInvocation) -> u32 {
  sgm_lane = inv.index % SGM_SUBGROUP_SIZE;
  sgm_subgroup = inv.index / SGM_SUBGROUP_SIZE;
  return sgm_subgroup;
}

fn sgmZero() -> SgmResult {
  return SgmResult();
}

fn sgmIndex(r: u32, c: u32, offset: u32, stride: u32, colMajor: bool) -> u32 {
  if (colMajor) { return offset + c * stride + r; }
  return offset + r * stride + c;
}

fn sgmLoadLeft(p: ptr<workgroup, SgmLeftSource>, offset: u32, stride: u32, colMajor: bool) -> SgmLeft {
  var m: SgmLeft;
  for (var j = 0u; j < SGM_LEFT_PER; j++) {
    let e = sgm_lane + j * SGM_SUBGROUP_SIZE;
    if (e < SGM_LEFT_LEN) { m.v[j] = (*p)[sgmIndex(e / SGM_K, e % SGM_K, offset, stride, colMajor)]; }
  }
  return m;
}

fn sgmLoadRight(p: ptr<workgroup, SgmRightSource>, offset: u32, stride: u32, colMajor: bool) -> SgmRight {
  var m: SgmRight;
  for (var j = 0u; j < SGM_RIGHT_PER; j++) {
    let e = sgm_lane + j * SGM_SUBGROUP_SIZE;
    if (e < SGM_RIGHT_LEN) { m.v[j] = (*p)[sgmIndex(e / SGM_N, e % SGM_N, offset, stride, colMajor)]; }
  }
  return m;
}

fn sgmStoreResult(p: ptr<workgroup, SgmResultTarget>, offset: u32, value: SgmResult, stride: u32, colMajor: bool) {
  for (var j = 0u; j < SGM_RESULT_PER; j++) {
    let e = sgm_lane + j * SGM_SUBGROUP_SIZE;
    if (e < SGM_RESULT_LEN) { (*p)[sgmIndex(e / SGM_N, e % SGM_N, offset, stride, colMajor)] = value.v[j]; }
  }
}

/** left · right + acc */
fn sgmMultiplyAccumulate(left: SgmLeft, right: SgmRight, acc: SgmResult) -> SgmResult {
  let xl = sgm_subgroup * SGM_LEFT_LEN;
  let xr = sgm_subgroup * SGM_RIGHT_LEN;
  for (var j = 0u; j < SGM_LEFT_PER; j++) {
    let e = sgm_lane + j * SGM_SUBGROUP_SIZE;
    if (e < SGM_LEFT_LEN) { sgm_left_x[xl + e] = left.v[j]; }
  }
  for (var j = 0u; j < SGM_RIGHT_PER; j++) {
    let e = sgm_lane + j * SGM_SUBGROUP_SIZE;
    if (e < SGM_RIGHT_LEN) { sgm_right_x[xr + e] = right.v[j]; }
  }
  workgroupBarrier();
  var out = acc;
  for (var j = 0u; j < SGM_RESULT_PER; j++) {
    let e = sgm_lane + j * SGM_SUBGROUP_SIZE;
    if (e < SGM_RESULT_LEN) {
      let r = e / SGM_N;
      let c = e % SGM_N;
      var s = acc.v[j];
      for (var k = 0u; k < SGM_K; k++) {
        s = fma(f32(sgm_left_x[xl + r * SGM_K + k]), f32(sgm_right_x[xr + k * SGM_N + c]), s);
      }
      out.v[j] = s;
    }
  }
  // the next call overwrites the operands
  workgroupBarrier();
  return out;
}
