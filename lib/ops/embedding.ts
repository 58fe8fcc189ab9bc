// Token embedding lookup and its gradient (a scatter-add into the table's rows).
// Kernel: kernels/embedding.wgsl.
import { pipeline, dispatch, clearBuffer } from "../gpu/index.ts";
import { Tensor } from "../tensor/tensor.ts";
import { record } from "../tensor/autograd.ts";
import { strideGrid } from "../gpu/grid.ts";

export function embeddingRef(W: Float32Array, ids: ArrayLike<number>, C: number): Float32Array {
  const out = new Float32Array(ids.length * C);
  for (let t = 0; t < ids.length; t++) out.set(W.subarray(ids[t]! * C, ids[t]! * C + C), t * C);
  return out;
}

export function embeddingBackwardRef(dout: Float32Array, ids: ArrayLike<number>, V: number, C: number): Float32Array {
  const dW = new Float64Array(V * C);
  for (let t = 0; t < ids.length; t++) for (let c = 0; c < C; c++) dW[ids[t]! * C + c] += dout[t * C + c]!;
  return Float32Array.from(dW);
}

/** W: (V, C), ids: (N) i32 → (N, C). */
export function embedding(W: Tensor, ids: Tensor): Tensor {
  const [V, C] = W.shape as [number, number];
  if (ids.dtype !== "i32") throw new Error("embedding: ids must be i32");
  const N = ids.size;
  const out = Tensor.empty([N, C]);
  dispatch(
    pipeline("embedding", { FORWARD: true }),
    [ids.buffer, W.buffer, out.buffer],
    [N, C, V],
    strideGrid(N * C, 64),
  );
  return record(out, "embedding", [W], (d) => {
    const dW = Tensor.empty(W.shape);
    clearBuffer(dW.buffer, 0, dW.bytes);
    dispatch(
      pipeline("embedding", { FORWARD: false }),
      [ids.buffer, d.buffer, dW.buffer],
      [N, C, V],
      [Math.ceil(C / 64)],
    );
    return [dW];
  });
}
