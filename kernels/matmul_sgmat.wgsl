// matmul_sgmat: C[b] = op(A[b]) · op(B[b])   (or C[b] += ... with ACCUMULATE) on subgroup matrices:
// operands rounded to f16, products accumulated in f32 — the arithmetic of --precision mixed, on
// tensor cores where the adapter has them (SUBGROUP_MATRIX "native") and through the exact emulation
// elsewhere ("emulate"); the same text either way (kernels/common/subgroup_matrix_*.wgsl).
//   op(A) is (M,K): A stored (M,K), or (K,M) with TRANS_A;  op(B) is (K,N): B stored (K,N), or (N,K) with TRANS_B.
//   The layouts backward needs: A·B (forward), A·Bᵀ (dA = dC·Bᵀ), Aᵀ·B (dB = Aᵀ·dC), and Aᵀ·Bᵀ.
// Bindings: 0 A (read, f32), 1 B (read; u32 words: f32 values, or bf16/f16 pairs with HALF),
//   2 C (read_write, f32, (batch, M, N)), 3 uniform Params;
//   strideA/B/C are the elements between batch items (0 broadcasts one matrix over the batch).
// Grid: (ceil(N/BN), ceil(M/BM), batch); workgroup SGM_SUBGROUPS * SGM_SUBGROUP_SIZE invocations.
// The workgroup computes a BM×BN block of C; its SUB_M × SUB_N subgroups own TM × TN result matrices
// each (SGM_M × SGM_N apiece). Per step of BK = KT*SGM_K along K, the workgroup stages A's and B's
// tiles in workgroup memory as f16, zero past the edges (odd shapes), in their own storage layout so
// that the staging reads are contiguous; a transposed operand is then loaded column-major. Results
// leave through workgroup memory, one matrix per subgroup at a time, so that the edges are clipped
// and ACCUMULATE adds.
// CPU reference: matmulRef in lib/ops/matmul.ts on f16-rounded inputs.
enable f16;

// Windows (lib/ops/matmul.ts splits a product whose operands are over one storage binding): lda, ldb
//   and ldc are the stored row strides (K or M for A, N or K for B, N for C when unsplit) and offA/B/C
//   the element where each operand's block starts in its binding (0 unsplit).
//   A product split along K adds its later parts with ACCUMULATE (not bit for bit the unsplit sum).

struct Params { M: u32, N: u32, K: u32, strideA: u32, strideB: u32, strideC: u32, lda: u32, ldb: u32, ldc: u32, offA: u32, offB: u32, offC: u32 }

@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<u32>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

const TM: u32 = 2u;
const TN: u32 = 2u;
const SUB_M: u32 = 2u;
const SUB_N: u32 = 2u;
const KT: u32 = 2u;
const TRANS_A: bool = false;
const TRANS_B: bool = false;
const ACCUMULATE: bool = false;
// #include "common/subgroup_matrix_{SUBGROUP_MATRIX}.wgsl"
// #include "common/half_weights.wgsl"

// B's element i: an f32, or a half-width weight widened (common/half_weights.wgsl)
fn loadB(i: u32) -> f32 {
  if (HALF == 0u) { return bitcast<f32>(B[i]); }
  return widenHalf(B[i >> 1u], (i & 1u) == 1u);
}

const SGM_SUBGROUPS: u32 = SUB_M * SUB_N;
const WG: u32 = SGM_SUBGROUPS * SGM_SUBGROUP_SIZE;
const BM: u32 = SUB_M * TM * SGM_M;
const BN: u32 = SUB_N * TN * SGM_N;
const BK: u32 = KT * SGM_K;
const RESULT_LEN: u32 = SGM_M * SGM_N;

alias SgmLeftSource = array<f16, BM * BK>;
alias SgmRightSource = array<f16, BK * BN>;
alias SgmResultTarget = array<f32, SGM_SUBGROUPS * RESULT_LEN>;

var<workgroup> As: SgmLeftSource; // As[k * BM + m] with TRANS_A, else As[m * BK + k]
var<workgroup> Bs: SgmRightSource; // Bs[n * BK + k] with TRANS_B, else Bs[k * BN + n]
var<workgroup> Cs: SgmResultTarget; // subgroup s's result matrix at s * RESULT_LEN, row-major

// f32 → f16 rounded to nearest. Past f16's range (65504; from 65520 on it rounds to infinity) the
// conversion is undefined in WGSL, but the loss scaler counts on seeing ±inf, so spell it out, and
// keep NaN a NaN. (The bit patterns carry x's sign so that they are not constants: a constant inf or
// NaN is a compile error.)
fn toF16(x: f32) -> f16 {
  let bits = bitcast<u32>(x);
  let sign = (bits >> 16u) & 0x8000u;
  if ((bits & 0x7fffffffu) > 0x7f800000u) { return bitcast<vec2<f16>>(sign | 0x7e00u).x; }
  if (abs(x) >= 65520.0) { return bitcast<vec2<f16>>(sign | 0x7c00u).x; }
  return f16(x);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, inv: SgmInvocation) {
  let sg = sgmBegin(inv);
  let li = inv.index;
  let sm = sg / SUB_N;
  let sn = sg % SUB_N;
  let offA = p.offA + wg.z * p.strideA;
  let offB = p.offB + wg.z * p.strideB;
  let offC = p.offC + wg.z * p.strideC;
  let row0 = wg.y * BM;
  let col0 = wg.x * BN;

  var acc: array<SgmResult, TM * TN>;
  for (var i = 0u; i < TM * TN; i++) { acc[i] = sgmZero(); }
  var left: array<SgmLeft, TM>;
  var right: array<SgmRight, TN>;

  for (var k0 = 0u; k0 < p.K; k0 += BK) {
    for (var i = li; i < BM * BK; i += WG) {
      var mm: u32; var kk: u32;
      if (TRANS_A) { mm = i % BM; kk = i / BM; } else { kk = i % BK; mm = i / BK; }
      let gm = row0 + mm;
      let gk = k0 + kk;
      var v = 0.0;
      if (gm < p.M && gk < p.K) {
        if (TRANS_A) { v = A[offA + gk * p.lda + gm]; } else { v = A[offA + gm * p.lda + gk]; }
      }
      As[i] = toF16(v);
    }
    for (var i = li; i < BK * BN; i += WG) {
      var nn: u32; var kk: u32;
      if (TRANS_B) { kk = i % BK; nn = i / BK; } else { nn = i % BN; kk = i / BN; }
      let gn = col0 + nn;
      let gk = k0 + kk;
      var v = 0.0;
      if (gn < p.N && gk < p.K) {
        if (TRANS_B) { v = loadB(offB + gn * p.ldb + gk); } else { v = loadB(offB + gk * p.ldb + gn); }
      }
      Bs[i] = toF16(v);
    }
    workgroupBarrier();
    for (var t = 0u; t < KT; t++) {
      let k = t * SGM_K;
      for (var i = 0u; i < TM; i++) {
        let m = (sm * TM + i) * SGM_M;
        left[i] = sgmLoadLeft(&As, select(m * BK + k, k * BM + m, TRANS_A), select(BK, BM, TRANS_A), TRANS_A);
      }
      for (var j = 0u; j < TN; j++) {
        let n = (sn * TN + j) * SGM_N;
        right[j] = sgmLoadRight(&Bs, select(k * BN + n, n * BK + k, TRANS_B), select(BN, BK, TRANS_B), TRANS_B);
      }
      for (var i = 0u; i < TM; i++) {
        for (var j = 0u; j < TN; j++) { acc[i * TN + j] = sgmMultiplyAccumulate(left[i], right[j], acc[i * TN + j]); }
      }
    }
    workgroupBarrier();
  }

  for (var i = 0u; i < TM; i++) {
    for (var j = 0u; j < TN; j++) {
      sgmStoreResult(&Cs, sg * RESULT_LEN, acc[i * TN + j], SGM_N, false);
      workgroupBarrier();
      for (var e = li; e < SGM_SUBGROUPS * RESULT_LEN; e += WG) {
        let s = e / RESULT_LEN;
        let r = row0 + ((s / SUB_N) * TM + i) * SGM_M + (e % RESULT_LEN) / SGM_N;
        let c = col0 + ((s % SUB_N) * TN + j) * SGM_N + e % SGM_N;
        if (r < p.M && c < p.N) {
          let idx = offC + r * p.ldc + c;
          if (ACCUMULATE) { C[idx] += Cs[e]; } else { C[idx] = Cs[e]; }
        }
      }
      workgroupBarrier();
    }
  }
}
