// Shape-only ops: reshape is a view of the same buffer; its gradient is the gradient reshaped back.
import { Tensor } from "../tensor/tensor.ts";
import { record } from "../tensor/autograd.ts";

export function reshape(t: Tensor, shape: readonly number[]): Tensor {
  const out = Tensor.view(t, shape);
  return record(out, "reshape", [t], (d) => [Tensor.view(d, t.shape)]);
}
