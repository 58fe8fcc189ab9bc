// matmul: C[b] = op(A[b]) · op(B[b])   (or C[b] += ... with ACCUMULATE), f32, workgroup-memory tiled.
//   op(A) is (M,K): A stored (M,K), or (K,M) with TRANS_A;  op(B) is (K,N): B stored (K,N), or (N,K) with TRANS_B.
//   The three layouts backward needs: A·B (forward), A·Bᵀ (dA = dC·Bᵀ), Aᵀ·B (dB = Aᵀ·dC).
// Fusions, so that a block's elementwise neighbours cost no dispatch of their own:
//   SWIGLU_A: op(A) = silu(A) ⊙ U elementwise (A the gate, U the up projection, same layout), applied as
//     A is loaded: the MLP's down projection reads its input straight from gate and up.
//   RESIDUAL: C = R + op(A)·op(B) (R has C's layout): a residual add as the store.
// Bindings: 0 A (read), 1 B (read; u32 words: f32 values, or bf16/f16 pairs with HALF), 2 U (read;
//   SWIGLU_A, else any buffer), 3 R (read; RESIDUAL, else any buffer), 4 C (read_write, (batch, M, N)),
//   5 uniform Params.
//   strideA/B/C are the elements between batch items (0 broadcasts one matrix over the batch).
// Windows (lib/ops/matmul.ts splits a product whose operands are over one storage binding): lda, ldb
//   and ldc are the stored row strides (K or M for A, N or K for B, N for C when unsplit) and offA/B/C
//   the element where each operand's block starts in its binding (0 unsplit).
// CONTINUE: the accumulators start from C instead of 0, so a product split along K continues one
//   dispatch's fma chain in the next: the same bits as the unsplit product.
// Grid: (ceil(N/BN), ceil(M/BM), batch); workgroup (BN/TN, BM/TM).
// Each thread owns a TM×TN block of C, rows lid.y + i*WY and columns lid.x + j*WX (interleaved, so that
// neighbouring threads touch neighbouring addresses). Tile sizes are compile-time `const`s rewritten by
// the caller (lib/ops/matmul.ts picks them per adapter, see autotune there).
// CPU reference: matmulRef in lib/ops/matmul.ts (with swigluRef and addRef around it for the fusions).

struct Params { M: u32, N: u32, K: u32, strideA: u32, strideB: u32, strideC: u32, lda: u32, ldb: u32, ldc: u32, offA: u32, offB: u32, offC: u32 }

@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<u32>;
@group(0) @binding(2) var<storage, read> U: array<f32>;
@group(0) @binding(3) var<storage, read> R: array<f32>;
@group(0) @binding(4) var<storage, read_write> C: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 16u;
const TM: u32 = 4u;
const TN: u32 = 4u;
const TRANS_A: bool = false;
const TRANS_B: bool = false;
const ACCUMULATE: bool = false;
const SWIGLU_A: bool = false;
const RESIDUAL: bool = false;
const CONTINUE: bool = false;
// #include "common/f16_inputs.wgsl"
// #include "common/half_weights.wgsl"
const WX: u32 = BN / TN;
const WY: u32 = BM / TM;
const NT: u32 = WX * WY;

// A's element i: the stored value, or SwiGLU of gate and up in swiglu.wgsl's exact expression, so the
// product sees the same bits as one over the materialized activation.
fn loadA(i: u32) -> f32 {
  if (SWIGLU_A) {
    let x = A[i];
    let s = 1.0 / (1.0 + exp(-x));
    return x * s * U[i];
  }
  return A[i];
}

// B's element i: an f32, or a half-width weight widened (common/half_weights.wgsl)
fn loadB(i: u32) -> f32 {
  if (HALF == 0u) { return bitcast<f32>(B[i]); }
  return widenHalf(B[i >> 1u], (i & 1u) == 1u);
}

var<workgroup> As: array<f32, BK * BM>; // As[k * BM + m]
var<workgroup> Bs: array<f32, BK * BN>; // Bs[k * BN + n]

@compute @workgroup_size(WX, WY)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) li: u32) {
  let offA = p.offA + wg.z * p.strideA;
  let offB = p.offB + wg.z * p.strideB;
  let offC = p.offC + wg.z * p.strideC;
  let row0 = wg.y * BM;
  let col0 = wg.x * BN;
  var acc: array<f32, TM * TN>;
  var a: array<f32, TM>;
  var b: array<f32, TN>;
  if (CONTINUE) {
    for (var i = 0u; i < TM; i++) {
      let r = row0 + lid.y + i * WY;
      for (var j = 0u; j < TN; j++) {
        let c = col0 + lid.x + j * WX;
        if (r < p.M && c < p.N) { acc[i * TN + j] = C[offC + r * p.ldc + c]; }
      }
    }
  }

  for (var k0 = 0u; k0 < p.K; k0 += BK) {
    // Stage the A and B tiles; the index split follows each operand's storage so loads are contiguous.
    for (var i = li; i < BM * BK; i += NT) {
      var mm: u32; var kk: u32;
      if (TRANS_A) { mm = i % BM; kk = i / BM; } else { kk = i % BK; mm = i / BK; }
      let gm = row0 + mm;
      let gk = k0 + kk;
      var v = 0.0;
      if (gm < p.M && gk < p.K) {
        if (TRANS_A) { v = loadA(offA + gk * p.lda + gm); } else { v = loadA(offA + gm * p.lda + gk); }
      }
      As[kk * BM + mm] = q16(v);
    }
    for (var i = li; i < BN * BK; i += NT) {
      var nn: u32; var kk: u32;
      if (TRANS_B) { kk = i % BK; nn = i / BK; } else { nn = i % BN; kk = i / BN; }
      let gn = col0 + nn;
      let gk = k0 + kk;
      var v = 0.0;
      if (gn < p.N && gk < p.K) {
        if (TRANS_B) { v = loadB(offB + gn * p.ldb + gk); } else { v = loadB(offB + gk * p.ldb + gn); }
      }
      Bs[kk * BN + nn] = q16(v);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      for (var i = 0u; i < TM; i++) { a[i] = As[kk * BM + lid.y + i * WY]; }
      for (var j = 0u; j < TN; j++) { b[j] = Bs[kk * BN + lid.x + j * WX]; }
      for (var i = 0u; i < TM; i++) {
        for (var j = 0u; j < TN; j++) { acc[i * TN + j] = fma(a[i], b[j], acc[i * TN + j]); }
      }
    }
    workgroupBarrier();
  }

  for (var i = 0u; i < TM; i++) {
    let r = row0 + lid.y + i * WY;
    if (r >= p.M) { continue; }
    for (var j = 0u; j < TN; j++) {
      let c = col0 + lid.x + j * WX;
      if (c < p.N) {
        let idx = offC + r * p.ldc + c;
        if (ACCUMULATE) { C[idx] += acc[i * TN + j]; }
        else if (RESIDUAL) { C[idx] = R[idx] + acc[i * TN + j]; }
        else { C[idx] = acc[i * TN + j]; }
      }
    }
  }
}
