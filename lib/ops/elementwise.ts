// Elementwise ops: add, mul, scale (forward, backward, CPU reference), and the raw helpers autograd
// uses to sum gradients (accumulate in place, clone, fill). Kernel: kernels/elementwise.wgsl.
import { pipeline, dispatch, copyBuffer, scratchBuffer, elementRanges, span } from "../gpu/index.ts";
import { Tensor } from "../tensor/tensor.ts";
import { record } from "../tensor/autograd.ts";
import { strideGrid } from "../gpu/grid.ts";
import { sameShape } from "../base/shape.ts";

const OP = { add: 0, mul: 1, scale: 2, fill: 3, accumulate: 4 } as const;

// ---- CPU references ----
export function addRef(a: Float32Array, b: Float32Array): Float32Array {
  return a.map((x, i) => x + b[i]!);
}
export function mulRef(a: Float32Array, b: Float32Array): Float32Array {
  return a.map((x, i) => x * b[i]!);
}
export function scaleRef(a: Float32Array, alpha: number): Float32Array {
  return a.map((x) => Math.fround(alpha) * x);
}

// ---- raw launches (no autograd) ----
// Unused inputs bind a scratch buffer: WebGPU forbids binding the output's buffer as an input too.
// A tensor over one binding goes in aligned element ranges, one dispatch each (gpu/bindings.ts).
function launch(op: number, out: Tensor, a: Tensor | null, b: Tensor | null, alpha = 0): Tensor {
  const p = pipeline("elementwise", { OP: op });
  for (const [s, n] of elementRanges(out.size)) {
    const bind = (t: Tensor | null) => (t ? span(t.buffer, s, n).binding : scratchBuffer());
    dispatch(p, [bind(a), bind(b), bind(out)], [n, [alpha, "f32"]], strideGrid(n));
  }
  return out;
}

function checkSame(op: string, a: Tensor, b: Tensor): void {
  if (!sameShape(a.shape, b.shape)) throw new Error(`${op}: shapes [${a.shape}] and [${b.shape}] differ`);
}

/** dst += src, in place. */
export function addInto(dst: Tensor, src: Tensor): Tensor {
  checkSame("addInto", dst, src);
  return launch(OP.accumulate, dst, src, null);
}

export function fillLike(t: Tensor, value: number): Tensor {
  const out = Tensor.empty(t.shape);
  return launch(OP.fill, out, null, null, value);
}

export function fill(shape: readonly number[], value: number): Tensor {
  const out = Tensor.empty(shape);
  return launch(OP.fill, out, null, null, value);
}

export function clone(t: Tensor): Tensor {
  const out = Tensor.empty(t.shape, t.dtype);
  copyBuffer(t.buffer, 0, out.buffer, 0, t.bytes);
  return out;
}

// ---- differentiable ops ----
export function add(a: Tensor, b: Tensor): Tensor {
  checkSame("add", a, b);
  const out = launch(OP.add, Tensor.empty(a.shape), a, b);
  return record(out, "add", [a, b], (d) => [d, d]);
}

export function mul(a: Tensor, b: Tensor): Tensor {
  checkSame("mul", a, b);
  const out = launch(OP.mul, Tensor.empty(a.shape), a, b);
  return record(out, "mul", [a, b], (d) => [
    a.requiresGrad ? launch(OP.mul, Tensor.empty(a.shape), d, b) : null,
    b.requiresGrad ? launch(OP.mul, Tensor.empty(b.shape), d, a) : null,
  ]);
}

export function scale(a: Tensor, alpha: number): Tensor {
  const out = launch(OP.scale, Tensor.empty(a.shape), a, null, alpha);
  return record(out, "scale", [a], (d) => [launch(OP.scale, Tensor.empty(a.shape), d, null, alpha)]);
}
