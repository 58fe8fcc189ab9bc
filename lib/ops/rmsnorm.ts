// RMSNorm over the last axis (pre-norm blocks and the final norm): forward saves rstd for backward;
// dw is a row-sum of per-row products (sum_cols.ts), so the result is deterministic. The backward can
// add a residual's gradient into dx as it writes it (swiglu.ts's MLP block uses that).
// Kernels: rmsnorm_forward.wgsl, rmsnorm_backward.wgsl.
import { pipeline, dispatch, scratchBuffer } from "../gpu/index.ts";
import { Tensor } from "../tensor/tensor.ts";
import { record } from "../tensor/autograd.ts";
import { rowGrid } from "../gpu/grid.ts";
import { sumCols } from "./sum_cols.ts";

// ---- CPU references (f64 inside) ----
export function rmsnormRef(x: Float32Array, w: Float32Array, R: number, C: number, eps: number) {
  const y = new Float32Array(R * C),
    rstd = new Float32Array(R);
  for (let r = 0; r < R; r++) {
    let s = 0;
    for (let c = 0; c < C; c++) s += x[r * C + c]! ** 2;
    const rs = 1 / Math.sqrt(s / C + eps);
    rstd[r] = rs;
    for (let c = 0; c < C; c++) y[r * C + c] = x[r * C + c]! * rs * w[c]!;
  }
  return { y, rstd };
}

export function rmsnormBackwardRef(
  x: Float32Array,
  w: Float32Array,
  dy: Float32Array,
  R: number,
  C: number,
  eps: number,
) {
  const dx = new Float32Array(R * C),
    dw = new Float64Array(C);
  for (let r = 0; r < R; r++) {
    let s = 0;
    for (let c = 0; c < C; c++) s += x[r * C + c]! ** 2;
    const rs = 1 / Math.sqrt(s / C + eps);
    let m = 0;
    for (let c = 0; c < C; c++) m += dy[r * C + c]! * w[c]! * x[r * C + c]!;
    m /= C;
    for (let c = 0; c < C; c++) {
      const i = r * C + c;
      dx[i] = rs * (dy[i]! * w[c]! - x[i]! * rs * rs * m);
      dw[c] += dy[i]! * x[i]! * rs;
    }
  }
  return { dx, dw: Float32Array.from(dw) };
}

// ---- raw launches (no autograd), for ops that contain a norm (swiglu.ts's MLP) ----
/** y = rmsnorm(x)·w over the last axis; returns y and rstd (R), what the backward needs. */
export function rmsnormForward(x: Tensor, w: Tensor, eps: number): { y: Tensor; rstd: Tensor } {
  const C = x.shape[x.shape.length - 1]!;
  if (w.size !== C) throw new Error(`rmsnorm: weight has ${w.size} elements for ${C} channels`);
  const R = x.size / C;
  const y = Tensor.empty(x.shape);
  const rstd = Tensor.empty([R]);
  dispatch(pipeline("rmsnorm_forward"), [x.buffer, w.buffer, y.buffer, rstd.buffer], [R, C, [eps, "f32"]], rowGrid(R));
  return { y, rstd };
}

/**
 * dx and dw (null unless `withDw`) from dy; `dres`, when given, is added into dx in the same kernel:
 * x's gradient through a residual that skips the norm.
 */
export function rmsnormBackward(
  x: Tensor,
  w: Tensor,
  dy: Tensor,
  rstd: Tensor,
  withDw: boolean,
  dres?: Tensor,
): { dx: Tensor; dw: Tensor | null } {
  const C = x.shape[x.shape.length - 1]!;
  const R = x.size / C;
  const dx = Tensor.empty(x.shape);
  const dwrow = Tensor.empty(x.shape);
  dispatch(
    pipeline("rmsnorm_backward", { RESIDUAL: dres !== undefined }),
    [x.buffer, w.buffer, dy.buffer, rstd.buffer, dres?.buffer ?? scratchBuffer(), dx.buffer, dwrow.buffer],
    [R, C],
    rowGrid(R),
  );
  return { dx, dw: withDw ? sumCols(Tensor.empty(w.shape), dwrow, R, C) : null };
}

// ---- differentiable op ----
export function rmsnorm(x: Tensor, w: Tensor, eps: number): Tensor {
  const { y, rstd } = rmsnormForward(x, w, eps);
  return record(y, "rmsnorm", [x, w], (dy) => {
    const { dx, dw } = rmsnormBackward(x, w, dy, rstd, w.requiresGrad);
    return [dx, dw];
  });
}
