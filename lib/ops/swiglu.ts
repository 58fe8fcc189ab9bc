// SwiGLU, the gated MLP's activation silu(g) * u (Shazeer 2020, "GLU Variants Improve Transformer"),
// and the whole gated MLP as one op: FFN_SwiGLU(n) = (silu(n·Wgᵀ) ⊙ n·Wuᵀ)·Wdᵀ, plus a residual, with
// n = x or n = rmsnorm(x): a pre-norm block's second half. The op exists to save dispatches: the down
// projection applies the activation as it loads its input (matmul.wgsl's SWIGLU_A) and adds the
// residual as it stores, so h is never stored in the forward (nor kept for backward); backward
// recomputes h in the activation's backward kernel, sums n's two gradients (through gate and up) by
// accumulating the second product onto the first, and adds the residual's gradient in the norm's
// backward kernel.
// Kernels: kernels/swiglu.wgsl, kernels/matmul*.wgsl.
import { pipeline, dispatch, scratchBuffer, scratchOutBuffer } from "../gpu/index.ts";
import { Tensor } from "../tensor/tensor.ts";
import { record } from "../tensor/autograd.ts";
import { strideGrid } from "../gpu/grid.ts";
import { sameShape } from "../base/shape.ts";
import { fusesSwiglu, matmulInto } from "./matmul.ts";
import { rmsnorm, rmsnormBackward, rmsnormForward } from "./rmsnorm.ts";
import { plainShape, type MatmulShape } from "./_matmul_variants.ts";

const sig = (x: number) => 1 / (1 + Math.exp(-x));

export function swigluRef(g: Float32Array, u: Float32Array): Float32Array {
  return g.map((x, i) => x * sig(x) * u[i]!);
}

export function swigluBackwardRef(g: Float32Array, u: Float32Array, dh: Float32Array) {
  const dg = g.map((x, i) => dh[i]! * u[i]! * sig(x) * (1 + x * (1 - sig(x))));
  const du = g.map((x, i) => dh[i]! * x * sig(x));
  return { dg, du };
}

// ---- raw launches (no autograd) ----
function swigluInto(out: Tensor, g: Tensor, u: Tensor): Tensor {
  dispatch(
    pipeline("swiglu", { FORWARD: true }),
    [g.buffer, u.buffer, scratchBuffer(), out.buffer, scratchOutBuffer()],
    [g.size],
    strideGrid(g.size),
  );
  return out;
}

/** dg, du from dh; with writeH, dh's buffer holds h = silu(g) ⊙ u afterwards. */
function swigluBackwardInto(dg: Tensor, du: Tensor, g: Tensor, u: Tensor, dh: Tensor, writeH: boolean): void {
  dispatch(
    pipeline("swiglu", { FORWARD: false, WRITE_H: writeH }),
    [g.buffer, u.buffer, dh.buffer, dg.buffer, du.buffer],
    [g.size],
    strideGrid(g.size),
  );
}

// ---- differentiable ops ----
export function swiglu(g: Tensor, u: Tensor): Tensor {
  if (!sameShape(g.shape, u.shape)) throw new Error(`swiglu: gate [${g.shape}] and up [${u.shape}] differ`);
  const out = swigluInto(Tensor.empty(g.shape), g, u);
  return record(out, "swiglu", [g, u], (dh) => {
    const dg = Tensor.empty(g.shape),
      du = Tensor.empty(u.shape);
    swigluBackwardInto(dg, du, g, u, dh, false);
    return [dg, du];
  });
}

/** y = x·Wᵀ (+ residual) for a weight W that carries more than its matrix. */
type Linear = (x: Tensor, w: Tensor, residual?: Tensor) => Tensor;
// A weight with a LoRA adapter (lib/model/lora.ts registers this at load) is no plain matrix for the
// fused kernels: swigluMlp then runs the MLP as separate ops through that linear.
let adapted: { has: (w: Tensor) => boolean; linear: Linear } | null = null;

/** Register the weights that swigluMlp must not fuse past, and the linear layer that applies them. */
export function setAdaptedLinear(hook: { has: (w: Tensor) => boolean; linear: Linear } | null): void {
  adapted = hook;
}

/** An (M, N, K) product's shape with transposes; batch 1. */
const mm = (M: number, N: number, K: number, over: Partial<MatmulShape> = {}): MatmulShape => ({
  ...plainShape(M, N, K),
  ...over,
});

export interface MlpOpts {
  /** added to the output; x itself for a pre-norm block */
  residual?: Tensor;
  /** RMSNorm x with this weight (C) and epsilon before the gate and up projections */
  norm?: { weight: Tensor; eps: number };
}

/**
 * The gated MLP, residual + (silu(n·wGateᵀ) ⊙ n·wUpᵀ)·wDownᵀ with n = x, or n = rmsnorm(x) with
 * `norm`, for x (..., C) and PyTorch-layout weights wGate, wUp (I, C) and wDown (C, I). The same
 * arithmetic as rmsnorm → linear ×2 → swiglu → linear → add, bit for bit in f32, in 3 dispatches
 * forward (not 5; one more for the norm) and 7 backward (not 8; two more for the norm, and with the
 * residual x its gradient is added in the norm's backward instead of by autograd in a kernel of its own).
 */
export function swigluMlp(x: Tensor, wGate: Tensor, wUp: Tensor, wDown: Tensor, opts: MlpOpts = {}): Tensor {
  const { residual, norm } = opts;
  if (adapted && (adapted.has(wGate) || adapted.has(wUp) || adapted.has(wDown))) {
    const lin = adapted.linear;
    const n = norm ? rmsnorm(x, norm.weight, norm.eps) : x;
    return lin(swiglu(lin(n, wGate), lin(n, wUp)), wDown, residual);
  }
  const C = x.shape[x.shape.length - 1]!;
  const I = wGate.shape[0]!;
  const R = x.size / C;
  const want = (name: string, t: Tensor, shape: number[]) => {
    if (!sameShape(t.shape, shape)) throw new Error(`swigluMlp: ${name} is [${t.shape}], expected [${shape}]`);
  };
  want("gate", wGate, [I, C]);
  want("up", wUp, [I, C]);
  want("down", wDown, [C, I]);
  if (residual) want("residual", residual, [...x.shape]);
  if (norm) want("norm weight", norm.weight, [C]);
  const normed = norm ? rmsnormForward(x, norm.weight, norm.eps) : null;
  const n = normed?.y ?? x; // (R, C)
  const g = matmulInto(Tensor.empty([R, I]), n, wGate, mm(R, I, C, { transB: true })); // (R, I)
  const u = matmulInto(Tensor.empty([R, I]), n, wUp, mm(R, I, C, { transB: true })); // (R, I)
  const out = Tensor.empty(x.shape);
  const down = mm(R, C, I, { transB: true });
  if (fusesSwiglu(R)) matmulInto(out, g, wDown, down, { swigluUp: u, residual });
  else matmulInto(out, swigluInto(Tensor.empty([R, I]), g, u), wDown, down, { residual });
  // a pre-norm residual (x itself) joins x's gradient in the norm's backward, so it is no input of its own
  const ownResidual = residual !== undefined && !(normed && residual === x);
  const inputs = [x, wGate, wUp, wDown, ...(norm ? [norm.weight] : []), ...(ownResidual ? [residual] : [])];
  return record(out, "swiglu_mlp", inputs, (d) => {
    // the mirror of the forward: down projection, activation, gate and up, norm
    const dh = matmulInto(Tensor.empty([R, I]), d, wDown, mm(R, I, C)); // (R, I), then h
    const dg = Tensor.empty([R, I]),
      du = Tensor.empty([R, I]);
    swigluBackwardInto(dg, du, g, u, dh, wDown.requiresGrad);
    const dDown = wDown.requiresGrad
      ? matmulInto(Tensor.empty(wDown.shape), d, dh, mm(C, I, R, { transA: true }))
      : null;
    let dx: Tensor | null = null,
      dNorm: Tensor | null = null;
    if (x.requiresGrad || norm?.weight.requiresGrad) {
      const dn = matmulInto(Tensor.empty(x.shape), dg, wGate, mm(R, C, I));
      matmulInto(dn, du, wUp, mm(R, C, I, { accumulate: true }));
      if (normed) {
        const dres = residual !== undefined && !ownResidual ? d : undefined;
        const b = rmsnormBackward(x, norm!.weight, dn, normed.rstd, norm!.weight.requiresGrad, dres);
        dx = b.dx;
        dNorm = b.dw;
      } else dx = dn;
    }
    const dGate = wGate.requiresGrad
      ? matmulInto(Tensor.empty(wGate.shape), dg, n, mm(I, C, R, { transA: true }))
      : null;
    const dUp = wUp.requiresGrad ? matmulInto(Tensor.empty(wUp.shape), du, n, mm(I, C, R, { transA: true })) : null;
    return [dx, dGate, dUp, dDown, ...(norm ? [dNorm] : []), ...(ownResidual ? [d] : [])];
  });
}
