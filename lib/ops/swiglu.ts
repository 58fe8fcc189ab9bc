// SwiGLU activation of the MLP: down(silu(gate(x)) * up(x)); the matmuls are separate ops, this fuses
// the elementwise part. Kernel: kernels/swiglu.wgsl.
import { pipeline, dispatch, scratchBuffer, scratchOutBuffer } from "../gpu/index.ts";
import { Tensor } from "../tensor/tensor.ts";
import { record } from "../tensor/autograd.ts";
import { strideGrid } from "../gpu/grid.ts";
import { sameShape } from "../base/shape.ts";

const sig = (x: number) => 1 / (1 + Math.exp(-x));

export function swigluRef(g: Float32Array, u: Float32Array): Float32Array {
  return g.map((x, i) => x * sig(x) * u[i]!);
}

export function swigluBackwardRef(g: Float32Array, u: Float32Array, dh: Float32Array) {
  const dg = g.map((x, i) => dh[i]! * u[i]! * sig(x) * (1 + x * (1 - sig(x))));
  const du = g.map((x, i) => dh[i]! * x * sig(x));
  return { dg, du };
}

export function swiglu(g: Tensor, u: Tensor): Tensor {
  if (!sameShape(g.shape, u.shape)) throw new Error(`swiglu: gate [${g.shape}] and up [${u.shape}] differ`);
  const out = Tensor.empty(g.shape);
  dispatch(
    pipeline("swiglu", { FORWARD: true }),
    [g.buffer, u.buffer, scratchBuffer(), out.buffer, scratchOutBuffer()],
    [g.size],
    strideGrid(g.size),
  );
  return record(out, "swiglu", [g, u], (dh) => {
    const dg = Tensor.empty(g.shape),
      du = Tensor.empty(u.shape);
    dispatch(
      pipeline("swiglu", { FORWARD: false }),
      [g.buffer, u.buffer, dh.buffer, dg.buffer, du.buffer],
      [g.size],
      strideGrid(g.size),
    );
    return [dg, du];
  });
}
