// matmul_skinny: the same contract as matmul.wgsl (C[b] = op(A[b])·op(B[b]), layouts, ACCUMULATE,
// RESIDUAL, Params) for M <= MAXM rows — a decoding step, where a tiled kernel would compute whole
// tiles of rows that do not exist. Each thread owns one column n of C for all M rows and walks K once:
// B's column is read once, A's few rows stay in cache. No SWIGLU_A: every thread reads all of A, so
// it would redo each activation N times; the unfused one is cheaper here.
// Bindings: 0 A (read), 1 B (read; u32 words: f32 values, or bf16/f16 pairs with HALF), 2 R (read;
//   RESIDUAL, else any buffer), 3 C (read_write), 4 uniform Params.
// Windows (lib/ops/matmul.ts splits a product whose operands are over one storage binding): lda, ldb
//   and ldc are the stored row strides (K or M for A, N or K for B, N for C when unsplit) and offA/B/C
//   the element where each operand's block starts in its binding (0 unsplit).
// CONTINUE: the accumulators start from C instead of 0, so a product split along K continues one
//   dispatch's fma chain in the next: the same bits as the unsplit product.
// Grid: (ceil(N / 64), 1, batch); workgroup 64.
// CPU reference: matmulRef in lib/ops/matmul.ts.

struct Params { M: u32, N: u32, K: u32, strideA: u32, strideB: u32, strideC: u32, lda: u32, ldb: u32, ldc: u32, offA: u32, offB: u32, offC: u32 }

@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<u32>;
@group(0) @binding(2) var<storage, read> R: array<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

const MAXM: u32 = 8u;
const TRANS_A: bool = false;
const TRANS_B: bool = false;
const ACCUMULATE: bool = false;
const RESIDUAL: bool = false;
const CONTINUE: bool = false;
// #include "common/f16_inputs.wgsl"
// #include "common/half_weights.wgsl"

// B's element i: an f32, or a half-width weight widened (common/half_weights.wgsl)
fn loadB(i: u32) -> f32 {
  if (HALF == 0u) { return bitcast<f32>(B[i]); }
  return widenHalf(B[i >> 1u], (i & 1u) == 1u);
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(workgroup_id) wg: vec3u) {
  let n = gid.x;
  if (n >= p.N) { return; }
  let offA = p.offA + wg.z * p.strideA;
  let offB = p.offB + wg.z * p.strideB;
  let offC = p.offC + wg.z * p.strideC;
  var acc: array<f32, MAXM>;
  if (CONTINUE) {
    for (var m = 0u; m < MAXM; m++) {
      if (m >= p.M) { break; }
      acc[m] = C[offC + m * p.ldc + n];
    }
  }
  for (var k = 0u; k < p.K; k++) {
    var b: f32;
    if (TRANS_B) { b = loadB(offB + n * p.ldb + k); } else { b = loadB(offB + k * p.ldb + n); }
    for (var m = 0u; m < MAXM; m++) {
      if (m >= p.M) { break; }
      var a: f32;
      if (TRANS_A) { a = A[offA + k * p.lda + m]; } else { a = A[offA + m * p.lda + k]; }
      acc[m] = fma(q16(a), q16(b), acc[m]);
    }
  }
  for (var m = 0u; m < MAXM; m++) {
    if (m >= p.M) { break; }
    let idx = offC + m * p.ldc + n;
    if (ACCUMULATE) { C[idx] += acc[m]; }
    else if (RESIDUAL) { C[idx] = R[idx] + acc[m]; }
    else { C[idx] = acc[m]; }
  }
}
