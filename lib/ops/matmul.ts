// Matrix multiply, the hot path: C = op(A)·op(B), batched, with backward and the CPU reference.
//   a: (M, K) or (batch, M, K)   [stored (K, M) with transA]
//   b: (K, N) or (batch, K, N)   [stored (N, K) with transB]; a 2-D b is shared by every batch item
//   out: (M, N) or (batch, M, N)
// Backward uses the same kernel in the other layouts (A·Bᵀ, Aᵀ·B); a shared 2-D b gets its gradient
// summed over the batch by treating the batch as extra rows. Kernel choice: _matmul_variants.ts; in f16
// precision (--precision mixed) the subgroup-matrix kernel, native or emulated, per BUNLM_SUBGROUP_MATRIX.
// Fusions (kernels/matmul.wgsl): a residual added as C is stored (`residual`: out = residual + a·b, one
// dispatch instead of a matmul and an add), and SwiGLU applied as A is loaded (swiglu.ts's MLP).
// Operands over one storage binding (a 151,936 × 896 LM head, its logits and their gradients) are cut
// into blocks along M, N and K, one dispatch each, every operand bound as a window (splitMatmul); the
// parts along K continue the accumulators of the part before (CONTINUE), so the result is the bits of
// the unsplit product. Nothing over the cap: the one dispatch as before.
// B may be half-width weights (a "bf16" or "f16" tensor, loaded for inference): every kernel widens
// its values exactly as it loads them (kernels/common/half_weights.wgsl), so the product is the f32
// path's on the widened values, bit for bit, with the same dispatches; only B may be half.
import { Tensor, isHalf, elementBytes } from "../tensor/tensor.ts";
import { copyBuffer, maxBindingBytes, maxSpanElements, span, type Binding } from "../gpu/index.ts";
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
  type MatmulFusion,
} from "./_matmul_variants.ts";

export { subgroupMatrixPath, type SubgroupMatrixPath } from "./_matmul_variants.ts";

export interface MatmulOpts {
  transA?: boolean;
  transB?: boolean;
}

/** Tensors a matmul fuses around its product: see MatmulFusion in _matmul_variants.ts. */
export interface MatmulFuse {
  /** out = residual + op(A)·op(B); out's shape */
  residual?: Tensor;
  /** op(A) = silu(A) ⊙ swigluUp; A's shape; only where fusesSwiglu(M) */
  swigluUp?: Tensor;
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

function sgmatNow() {
  return matmulPrecision() === "f16" ? sgmatTarget() : null;
}

/**
 * Whether an M-row matmul can apply SwiGLU as it loads A: the tiled kernels can; the skinny one (a
 * few rows) would redo each activation per output column, and kernels/matmul_sgmat.wgsl has no such
 * prologue, so there the caller materializes the activation first.
 */
export function fusesSwiglu(M: number): boolean {
  return M > SKINNY_MAX_M && !sgmatNow();
}

/**
 * Raw launch into `out` (no autograd). accumulate: out += op(A)·op(B). A few rows (decoding) take the
 * skinny kernel in either precision: a matrix tile would be mostly padding. A residual on the
 * subgroup-matrix kernel is a copy and an accumulating product: the same sum, bit for bit.
 */
export function matmulInto(out: Tensor, a: Tensor, b: Tensor, s: MatmulShape, f: MatmulFuse = {}): Tensor {
  for (const [what, t] of [
    ["A", a],
    ["the output", out],
    ["the residual", f.residual],
    ["the SwiGLU up operand", f.swigluUp],
  ] as const)
    if (t && t.dtype !== "f32")
      throw new Error(`matmul: ${what} is ${t.dtype} [${t.shape}]; only B may be half-width (weights), the rest f32`);
  if (b.dtype !== "f32" && !isHalf(b.dtype))
    throw new Error(`matmul: B is ${b.dtype} [${b.shape}], not a float tensor`);
  if (isHalf(b.dtype)) s = { ...s, halfB: b.dtype };
  const bBuf = b.storage;
  const sgmat = sgmatNow();
  if (f.swigluUp && !fusesSwiglu(s.M)) throw new Error(`matmul: no SwiGLU prologue for ${s.M} rows on this path`);
  if (f.residual && f.residual.size !== out.size)
    throw new Error(`matmul: residual [${f.residual.shape}] does not match the output [${out.shape}]`);
  const residual = f.residual?.buffer;
  if (s.M <= SKINNY_MAX_M)
    splitMatmul((c, a, b, s, f) => dispatchSkinny(c, a, b, s, f.residual), out.buffer, a.buffer, bBuf, s, {
      residual,
    });
  else if (sgmat) {
    let sg = s;
    if (residual) {
      if (s.accumulate) throw new Error("matmul: accumulate does not go with a fusion");
      copyBuffer(residual, 0, out.buffer, 0, out.bytes);
      sg = { ...s, accumulate: true };
    }
    const v = sgmatVariant(sgmat);
    splitMatmul((c, a, b, s) => dispatchSgmat(sgmat, v, c, a, b, s), out.buffer, a.buffer, bBuf, sg, {}, true);
  } else {
    const v = matmulVariant();
    splitMatmul((c, a, b, s, f) => dispatchVariant(v, c, a, b, s, f), out.buffer, a.buffer, bBuf, s, {
      residual,
      swigluUp: f.swigluUp?.buffer,
    });
  }
  return out;
}

type Launch = (c: Binding, a: Binding, b: Binding, s: MatmulShape, f: MatmulFusion) => void;

// a block's rows and columns in multiples of a tile, where there are that many
const BLOCK = 64;
const roundBlock = (x: number) => (x >= BLOCK ? Math.floor(x / BLOCK) * BLOCK : x);

/** (outer, inner) of a block of a row-major matrix with row stride ld, shrunk to fit one window of E elements. */
function fitBlock(outer: number, inner: number, ld: number, E: number): [number, number] {
  if ((outer - 1) * ld + inner <= E) return [outer, inner];
  if (inner <= E) return [roundBlock(Math.floor((E - inner) / ld) + 1), inner]; // fewer rows
  return [1, roundBlock(E)]; // one row is over the window: part of it
}

/**
 * Launch one product, or, when an operand's buffer is over the binding cap, one launch per block
 * (mc, nc, kc) that keeps every operand's window within the cap. accumulateK: the kernel has no
 * CONTINUE, so the parts along K after the first add to C (sgmat; close, not the same bits).
 */
export function splitMatmul(
  launch: Launch,
  c: GPUBuffer,
  a: GPUBuffer,
  b: GPUBuffer,
  s: MatmulShape,
  f: { residual?: GPUBuffer; swigluUp?: GPUBuffer },
  accumulateK = false,
): void {
  const cap = maxBindingBytes();
  if ([c, a, b, f.residual, f.swigluUp].every((x) => !x || x.size <= cap)) {
    launch(c, a, b, s, { residual: f.residual, swigluUp: f.swigluUp });
    return;
  }
  if (s.batch > 1) {
    // a 2-D B shared by contiguous batch items is one product with batch·M rows
    if (s.strideB !== 0 || s.transA || s.strideA !== s.M * s.K || s.strideC !== s.M * s.N)
      throw new Error(`matmul: a batched product over the ${cap}-byte binding limit is not split`);
    s = { ...s, M: s.M * s.batch, batch: 1 };
  }
  const { M, N, K, transA, transB } = s;
  const lda = transA ? M : K,
    ldb = transB ? K : N,
    ldc = N;
  // B's windows count its own elements: 2 bytes each for half-width weights
  const bBytes = s.halfB ? elementBytes(s.halfB) : 4;
  const E = maxSpanElements(),
    Eb = maxSpanElements(bBytes);
  let mc = M,
    nc = N,
    kc = K;
  for (let pass = 0; pass < 4; pass++) {
    [mc, nc] = fitBlock(mc, nc, ldc, E);
    if (transA) [kc, mc] = fitBlock(kc, mc, lda, E);
    else [mc, kc] = fitBlock(mc, kc, lda, E);
    if (transB) [nc, kc] = fitBlock(nc, kc, ldb, Eb);
    else [kc, nc] = fitBlock(kc, nc, ldb, Eb);
  }
  if (kc < K && s.accumulate && !accumulateK)
    throw new Error("matmul: accumulate into C does not go with a product split along K");
  for (let m0 = 0; m0 < M; m0 += mc)
    for (let n0 = 0; n0 < N; n0 += nc)
      for (let k0 = 0; k0 < K; k0 += kc) {
        const m = Math.min(mc, M - m0),
          n = Math.min(nc, N - n0),
          k = Math.min(kc, K - k0);
        const aStart = transA ? k0 * lda + m0 : m0 * lda + k0;
        const aCount = transA ? (k - 1) * lda + m : (m - 1) * lda + k;
        const bStart = transB ? n0 * ldb + k0 : k0 * ldb + n0;
        const bCount = transB ? (n - 1) * ldb + k : (k - 1) * ldb + n;
        const cStart = m0 * ldc + n0,
          cCount = (m - 1) * ldc + n;
        // every operand as a window, so that R shares C's offsets and U shares A's
        const A = span(a, aStart, aCount, true),
          B = span(b, bStart, bCount, true, bBytes),
          C = span(c, cStart, cCount, true);
        const first = k0 === 0,
          last = k0 + k >= K;
        launch(
          C.binding,
          A.binding,
          B.binding,
          {
            ...s,
            M: m,
            N: n,
            K: k,
            lda,
            ldb,
            ldc,
            offA: A.base,
            offB: B.base,
            offC: C.base,
            accumulate: s.accumulate || (accumulateK && !first),
            cont: !accumulateK && !first,
          },
          {
            residual: f.residual && last ? span(f.residual, cStart, cCount, true).binding : undefined,
            swigluUp: f.swigluUp ? span(f.swigluUp, aStart, aCount, true).binding : undefined,
          },
        );
      }
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

/**
 * op(a)·op(b), or residual + op(a)·op(b) in one dispatch when `residual` (the output's shape) is given:
 * a transformer's residual add as the store of the projection before it.
 */
export function matmul(
  a: Tensor,
  b: Tensor,
  { transA = false, transB = false, residual }: MatmulOpts & { residual?: Tensor } = {},
): Tensor {
  const { M, N, K, batch, shareB, threeD } = dims(a, b, transA, transB);
  // half-width weights are not trainable (Tensor.param refuses them), and dB's product needs B in f32
  if (isHalf(b.dtype) && b.requiresGrad) throw new Error(`matmul: a ${b.dtype} B [${b.shape}] cannot take a gradient`);
  if (shareB && transA) throw new Error("matmul: a shared 2-D b with transA is not supported");
  const out = Tensor.empty(threeD ? [batch, M, N] : [M, N]);
  if (residual && residual.size !== out.size)
    throw new Error(`matmul: residual [${residual.shape}] does not match the output [${out.shape}]`);
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
  matmulInto(out, a, b, shape(M, N, K, batch, { transA, transB, strideA: M * K, strideB: shareB ? 0 : K * N }), {
    residual,
  });
  return record(out, "matmul", residual ? [a, b, residual] : [a, b], (d) => {
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
    // the residual's gradient is the output's, as add's is
    return residual ? [da, db, d] : [da, db];
  });
}
