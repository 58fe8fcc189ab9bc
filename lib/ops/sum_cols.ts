// Column sums: out[c] = Σ_r x[r, c] (or out[c] += ... with accumulate), the row-sum a weight gradient
// needs (RMSNorm's dw). A fixed reduction order, so the result is deterministic. No autograd: it is
// used inside backward passes. Kernel: kernels/sum_cols.wgsl.
import { pipeline, dispatch } from "../gpu/index.ts";
import type { Tensor } from "../tensor/tensor.ts";

// ---- CPU reference (f64 inside) ----
export function sumColsRef(x: Float32Array, R: number, C: number, acc?: Float32Array): Float32Array {
  const s = new Float64Array(C);
  for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) s[c] += x[r * C + c]!;
  return Float32Array.from(s, (v, c) => (acc ? acc[c]! + v : v));
}

// ---- GPU ----
export function sumCols(out: Tensor, x: Tensor, R: number, C: number, accumulate = false): Tensor {
  dispatch(pipeline("sum_cols", { ACCUMULATE: accumulate }), [x.buffer, out.buffer], [R, C], [Math.ceil(C / 16)]);
  return out;
}
