// Row reductions over the last axis: sum, mean, max (forward, backward, CPU reference).
// x (..., C) → out (...). max's forward also returns the argmax per row, which its backward needs.
// Kernels: kernels/reduce_rows.wgsl, kernels/reduce_rows_backward.wgsl.
import { pipeline, dispatch } from "../gpu/index.ts";
import { Tensor } from "../tensor/tensor.ts";
import { record } from "../tensor/autograd.ts";
import { rowGrid, strideGrid } from "../gpu/grid.ts";

export type ReduceOp = "sum" | "mean" | "max";
const OP: Record<ReduceOp, number> = { sum: 0, mean: 1, max: 2 };

// ---- CPU references (f64 accumulation: the reference should be the more exact side) ----
export function reduceRowsRef(
  x: Float32Array,
  R: number,
  C: number,
  op: ReduceOp,
): { out: Float32Array; idx: Uint32Array } {
  const out = new Float32Array(R);
  const idx = new Uint32Array(R);
  for (let r = 0; r < R; r++) {
    if (op === "max") {
      let best = -Infinity,
        at = 0;
      for (let c = 0; c < C; c++) if (x[r * C + c]! > best) (best = x[r * C + c]!), (at = c);
      out[r] = best;
      idx[r] = at;
    } else {
      let s = 0;
      for (let c = 0; c < C; c++) s += x[r * C + c]!;
      out[r] = op === "mean" ? s / C : s;
    }
  }
  return { out, idx };
}

export function reduceRowsBackwardRef(
  dout: Float32Array,
  idx: Uint32Array,
  R: number,
  C: number,
  op: ReduceOp,
): Float32Array {
  const dx = new Float32Array(R * C);
  for (let r = 0; r < R; r++)
    for (let c = 0; c < C; c++)
      dx[r * C + c] = op === "sum" ? dout[r]! : op === "mean" ? dout[r]! / C : c === idx[r] ? dout[r]! : 0;
  return dx;
}

// ---- GPU ----
export function reduceRows(x: Tensor, op: ReduceOp): Tensor {
  if (x.shape.length === 0) throw new Error(`reduce ${op}: needs at least one axis`);
  const C = x.shape[x.shape.length - 1]!;
  if (C === 0) throw new Error(`reduce ${op}: empty last axis`);
  const R = x.size / C;
  const out = Tensor.empty(x.shape.slice(0, -1));
  const idx = Tensor.empty([Math.max(R, 1)], "u32");
  dispatch(pipeline("reduce_rows", { OP: OP[op] }), [x.buffer, out.buffer, idx.buffer], [R, C], rowGrid(R));
  return record(out, op, [x], (d) => {
    const dx = Tensor.empty(x.shape);
    dispatch(
      pipeline("reduce_rows_backward", { OP: OP[op] }),
      [d.buffer, idx.buffer, dx.buffer],
      [R, C],
      strideGrid(R * C),
    );
    return [dx];
  });
}

export const sumRows = (x: Tensor) => reduceRows(x, "sum");
export const meanRows = (x: Tensor) => reduceRows(x, "mean");
export const maxRows = (x: Tensor) => reduceRows(x, "max");
