// A bias added to every row: out = x + b for x (R, C) and b (C), as a linear layer with bias computes
// x·Wᵀ + b (Qwen2's q/k/v projections). The backward passes dx through and sums db over the rows
// (sum_cols.ts, a fixed order: deterministic). Kernel: kernels/bias.wgsl.
import { pipeline, dispatch } from "../gpu/index.ts";
import { strideGrid } from "../gpu/grid.ts";
import { Tensor } from "../tensor/tensor.ts";
import { record } from "../tensor/autograd.ts";
import { sumCols } from "./sum_cols.ts";

// ---- CPU reference ----
export function biasRef(x: Float32Array, b: Float32Array): Float32Array {
  return x.map((v, i) => v + b[i % b.length]!);
}

// ---- GPU ----
export function addBias(x: Tensor, b: Tensor): Tensor {
  const C = b.size;
  const R = x.size / C;
  if (b.shape.length !== 1 || x.shape[x.shape.length - 1] !== C)
    throw new Error(`addBias: a bias [${b.shape}] does not fit rows of [${x.shape}]`);
  const out = Tensor.empty(x.shape);
  dispatch(pipeline("bias"), [x.buffer, b.buffer, out.buffer], [x.size, C], strideGrid(x.size));
  return record(out, "bias", [x, b], (d) => [d, b.requiresGrad ? sumCols(Tensor.empty([C]), d, R, C) : null]);
}
