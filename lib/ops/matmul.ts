// Matrix multiply, the hot path: C = op(A)·op(B), batched, with backward and the CPU reference.
//   a: (M, K) or (batch, M, K)   [stored (K, M) with transA]
//   b: (K, N) or (batch, K, N)   [stored (N, K) with transB]; a 2-D b is shared by every batch item
//   out: (M, N) or (batch, M, N)
// Backward uses the same kernel in the other layouts (A·Bᵀ, Aᵀ·B); a shared 2-D b gets its gradient
// summed over the batch by treating the batch as extra rows. Kernel choice: _matmul_variants.ts; in f16
// precision (--precision mixed) the subgroup-matrix kernel, native or emulated, per BUNLM_SUBGROUP_MATRIX.
import { Tensor } from "../tensor/tensor.ts";
import { record } from "../tensor/autograd.ts";
import {
  dispatchVariant,
  dispatchSkinny,
  dispatchSgmat,
  matmulVariant,
  matmulPrecision,
  sgmatTarget,
  sgmatVariant,
  SKINNY_MAX_M,
  type MatmulShape,
} from "./_matmul_variants.ts";

export { subgroupMatrixPath, type SubgroupMatrixPath } from "./_matmul_variants.ts";

export interface MatmulOpts {
  transA?: boolean;
  transB?: boolean;
}

// ---- CPU reference (f64 accumulation) ----
export function matmulRef(
  a: Float32Array,
  b: Float32Array,
  M: number,
  N: number,
  K: number,
  { transA = false, transB = false, batch = 1, shareB = false }: MatmulOpts & { batch?: number; shareB?: boolean } = {},
): Float32Array {
  const c = new Float32Array(batch * M * N);
  for (let z = 0; z < batch; z++) {
    const oa = z * M * K,
      ob = shareB ? 0 : z * K * N,
      oc = z * M * N;
    for (let m = 0; m < M; m++)
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) {
          const av = transA ? a[oa + k * M + m]! : a[oa + m * K + k]!;
          const bv = transB ? b[ob + n * K + k]! : b[ob + k * N + n]!;
          s += av * bv;
        }
        c[oc + m * N + n] = s;
      }
  }
  return c;
}

/**
 * Raw launch into `out` (no autograd). accumulate: out += op(A)·op(B). A few rows (decoding) take the
 * skinny kernel in either precision: a matrix tile would be mostly padding.
 */
export function matmulInto(out: Tensor, a: Tensor, b: Tensor, s: MatmulShape): Tensor {
  const sgmat = matmulPrecision() === "f16" ? sgmatTarget() : null;
  if (s.M <= SKINNY_MAX_M) dispatchSkinny(out.buffer, a.buffer, b.buffer, s);
  else if (sgmat) dispatchSgmat(sgmat, sgmatVariant(sgmat), out.buffer, a.buffer, b.buffer, s);
  else dispatchVariant(matmulVariant(), out.buffer, a.buffer, b.buffer, s);
  return out;
}

function dims(a: Tensor, b: Tensor, transA: boolean, transB: boolean) {
  const ra = a.shape.length,
    rb = b.shape.length;
  if (ra !== 2 && ra !== 3) throw new Error(`matmul: a must be 2-D or 3-D, got [${a.shape}]`);
  if (rb !== 2 && rb !== 3) throw new Error(`matmul: b must be 2-D or 3-D, got [${b.shape}]`);
  const batch = ra === 3 ? a.shape[0]! : 1;
  if (rb === 3 && (ra !== 3 || b.shape[0] !== batch))
    throw new Error(`matmul: batch of [${a.shape}] and [${b.shape}] differ`);
  const [a0, a1] = a.shape.slice(-2) as [number, number];
  const [b0, b1] = b.shape.slice(-2) as [number, number];
  const [M, K] = transA ? [a1, a0] : [a0, a1];
  const [Kb, N] = transB ? [b1, b0] : [b0, b1];
  if (K !== Kb)
    throw new Error(`matmul: inner sizes differ: [${a.shape}]${transA ? "ᵀ" : ""} · [${b.shape}]${transB ? "ᵀ" : ""}`);
  const shareB = rb === 2 && batch > 1;
  return { M, N, K, batch, shareB, threeD: ra === 3 };
}

export function matmul(a: Tensor, b: Tensor, { transA = false, transB = false }: MatmulOpts = {}): Tensor {
  const { M, N, K, batch, shareB, threeD } = dims(a, b, transA, transB);
  if (shareB && transA) throw new Error("matmul: a shared 2-D b with transA is not supported");
  const out = Tensor.empty(threeD ? [batch, M, N] : [M, N]);
  const shape = (m: number, n: number, k: number, z: number, over: Partial<MatmulShape>): MatmulShape => ({
    M: m,
    N: n,
    K: k,
    batch: z,
    transA: false,
    transB: false,
    accumulate: false,
    strideA: 0,
    strideB: 0,
    strideC: m * n,
    ...over,
  });
  matmulInto(out, a, b, shape(M, N, K, batch, { transA, transB, strideA: M * K, strideB: shareB ? 0 : K * N }));
  return record(out, "matmul", [a, b], (d) => {
    let da: Tensor | null = null,
      db: Tensor | null = null;
    if (a.requiresGrad) {
      da = Tensor.empty(a.shape);
      if (!transA)
        matmulInto(da, d, b, shape(M, K, N, batch, { transB: !transB, strideA: M * N, strideB: shareB ? 0 : K * N }));
      else
        matmulInto(
          da,
          b,
          d,
          shape(K, M, N, batch, { transA: transB, transB: true, strideA: shareB ? 0 : K * N, strideB: M * N }),
        );
    }
    if (b.requiresGrad) {
      db = Tensor.empty(b.shape);
      if (shareB) {
        // Σ_z A_zᵀ·dC_z: with A (batch·M, K) and dC (batch·M, N) contiguous, that is one matmul
        if (!transB) matmulInto(db, a, d, shape(K, N, batch * M, 1, { transA: true }));
        else matmulInto(db, d, a, shape(N, K, batch * M, 1, { transA: true }));
      } else if (!transB) {
        matmulInto(db, a, d, shape(K, N, M, batch, { transA: !transA, strideA: M * K, strideB: M * N }));
      } else {
        matmulInto(db, d, a, shape(N, K, M, batch, { transA: true, transB: transA, strideA: M * N, strideB: M * K }));
      }
    }
    return [da, db];
  });
}
