// matmul on subgroups: same contract as matmul.wgsl (C[b] = op(A[b])·op(B[b]), layouts, ACCUMULATE,
// the SWIGLU_A and RESIDUAL fusions, bindings, Params), for adapters whose subgroups are SG = 8 lanes
// wide (Mesa lavapipe: a subgroup is one 256-bit SIMD register). lavapipe turns every storage load
// into a bounds-checked scalar load and gains little from workgroup memory (DESIGN.md), so loads are
// what we save: each lane loads one row of A's 8-row block and the others get it by subgroupShuffle
// (a register permute), while B's values are loaded once per lane and reused for all 8 rows.
// A subgroup computes an 8 × (SG·TN) block of C: rows row0..row0+7; lane owns TN columns, in groups of
// four adjacent ones (col0 + (j/4)·SG·4 + lane·4 + j%4), so that with VEC_B (B not transposed and
// N % 4 == 0) a lane reads its four B values as one vec4. B is bound as vec4s either way (pooled
// buffers are multiples of 64 bytes); the scalar path picks the component. With HALF (bf16/f16 weights,
// two per word) B is bound as vec4s of u32 words, eight values each, and widened as loaded.
// Windows (lib/ops/matmul.ts splits a product whose operands are over one storage binding): lda, ldb
//   and ldc are the stored row strides (K or M for A, N or K for B, N for C when unsplit) and offA/B/C
//   the element where each operand's block starts in its binding (0 unsplit).
// CONTINUE: the accumulators start from C instead of 0, so a product split along K continues one
//   dispatch's fma chain in the next: the same bits as the unsplit product.
// VEC_B also needs ldb and offB to be multiples of 4.
// Workgroup: 64 threads = 8 subgroups, arranged SUB_M (along M) × SUB_N (along N).
// Grid: (ceil(N/(SUB_N*SG*TN)), ceil(M/(SUB_M*8)), batch).
// CPU reference: matmulRef in lib/ops/matmul.ts.
enable subgroups;

struct Params { M: u32, N: u32, K: u32, strideA: u32, strideB: u32, strideC: u32, lda: u32, ldb: u32, ldc: u32, offA: u32, offB: u32, offC: u32 }

@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> U: array<f32>;
@group(0) @binding(3) var<storage, read> R: array<f32>;
@group(0) @binding(4) var<storage, read_write> C: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

const SG: u32 = 8u;
const TM: u32 = 8u;
const TN: u32 = 8u; // a multiple of 4
const TN4: u32 = TN / 4u;
const SUB_M: u32 = 4u;
const SUB_N: u32 = 2u;
const TRANS_A: bool = false;
const TRANS_B: bool = false;
const VEC_B: bool = false;
const ACCUMULATE: bool = false;
const SWIGLU_A: bool = false;
const RESIDUAL: bool = false;
const CONTINUE: bool = false;
// #include "common/f16_inputs.wgsl"
// #include "common/half_weights.wgsl"

// No bounds checks on m and n: a row m >= M or column n >= N only feeds accumulators that are never
// written, and WebGPU keeps every access inside the buffer (robust buffer access), so the check would
// only cost a branch per load. k never leaves [0, K).
fn loadA(off: u32, m: u32, k: u32) -> f32 {
  if (TRANS_A) { return q16(loadA1(off + k * p.lda + m)); }
  return q16(loadA1(off + m * p.lda + k));
}

// SwiGLU of gate and up in swiglu.wgsl's exact expression, so the product sees the activation's bits
fn loadA1(i: u32) -> f32 {
  if (SWIGLU_A) {
    let x = A[i];
    let s = 1.0 / (1.0 + exp(-x));
    return x * s * U[i];
  }
  return A[i];
}

fn loadB1(i: u32) -> f32 {
  if (HALF == 0u) { return bitcast<f32>(B[i / 4u][i % 4u]); }
  let w = i >> 1u;
  return widenHalf(B[w / 4u][w % 4u], (i & 1u) == 1u);
}

// B[k, n..n+3] of op(B)
fn loadB4(off: u32, k: u32, n: u32) -> vec4<f32> {
  let b = loadB4raw(off, k, n);
  return vec4(q16(b.x), q16(b.y), q16(b.z), q16(b.w));
}

fn loadB4raw(off: u32, k: u32, n: u32) -> vec4<f32> {
  if (VEC_B) {
    let i = off + k * p.ldb + n;
    if (HALF == 0u) { return bitcast<vec4<f32>>(B[i / 4u]); }
    // four halves from i (a multiple of 4): two words, the first or second pair of a vec4
    let v = B[i / 8u];
    let w = select(v.xy, v.zw, (i % 8u) == 4u);
    return vec4(widenHalf(w.x, false), widenHalf(w.x, true), widenHalf(w.y, false), widenHalf(w.y, true));
  }
  if (TRANS_B) {
    return vec4(loadB1(off + n * p.ldb + k), loadB1(off + (n + 1u) * p.ldb + k), loadB1(off + (n + 2u) * p.ldb + k), loadB1(off + (n + 3u) * p.ldb + k));
  }
  let i = off + k * p.ldb + n;
  return vec4(loadB1(i), loadB1(i + 1u), loadB1(i + 2u), loadB1(i + 3u));
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32,
        @builtin(subgroup_invocation_id) lane: u32) {
  let sub = li / SG;
  let sm = sub / SUB_N;
  let sn = sub % SUB_N;
  let row0 = (wg.y * SUB_M + sm) * TM;
  let col0 = (wg.x * SUB_N + sn) * SG * TN;
  let offA = p.offA + wg.z * p.strideA;
  let offB = p.offB + wg.z * p.strideB;
  let offC = p.offC + wg.z * p.strideC;
  var acc: array<vec4<f32>, TM * TN4>;
  var b: array<vec4<f32>, TN4>;
  let myRow = row0 + lane % TM;
  if (CONTINUE) {
    for (var i = 0u; i < TM; i++) {
      let r = row0 + i;
      for (var j = 0u; j < TN4; j++) {
        for (var q = 0u; q < 4u; q++) {
          let c = col0 + j * SG * 4u + lane * 4u + q;
          if (r < p.M && c < p.N) { acc[i * TN4 + j][q] = C[offC + r * p.ldc + c]; }
        }
      }
    }
  }
  for (var k = 0u; k < p.K; k++) {
    let av = loadA(offA, myRow, k);
    for (var j = 0u; j < TN4; j++) { b[j] = loadB4(offB, k, col0 + j * SG * 4u + lane * 4u); }
    for (var i = 0u; i < TM; i++) {
      let ai = subgroupShuffle(av, i);
      for (var j = 0u; j < TN4; j++) { acc[i * TN4 + j] = fma(vec4(ai), b[j], acc[i * TN4 + j]); }
    }
  }
  for (var i = 0u; i < TM; i++) {
    let r = row0 + i;
    if (r >= p.M) { break; }
    for (var j = 0u; j < TN4; j++) {
      for (var q = 0u; q < 4u; q++) {
        let c = col0 + j * SG * 4u + lane * 4u + q;
        if (c < p.N) {
          let idx = offC + r * p.ldc + c;
          if (ACCUMULATE) { C[idx] += acc[i * TN4 + j][q]; }
          else if (RESIDUAL) { C[idx] = R[idx] + acc[i * TN4 + j][q]; }
          else { C[idx] = acc[i * TN4 + j][q]; }
        }
      }
    }
  }
}
