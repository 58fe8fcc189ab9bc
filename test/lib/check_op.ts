// One way to test an op (tinygrad's helper_test_op is the model): run it on the GPU on random inputs,
// compare the output with its CPU reference, then push a random upstream gradient dout back through
// it (backward of Σ out ⊙ dout) and compare every input's gradient with the reference backward, or,
// when the op has none, with central finite differences of Σ ref(x) ⊙ dout in f64. Tolerances are
// normwise relative errors (max |got - want| / max |want|), given by each test with its reason.
import { expect } from "bun:test";
import { Tensor, scopeAsync } from "../../lib/tensor/index.ts";
import { backward } from "../../lib/ops/backward.ts";
import { mul, sumRows } from "../../lib/ops/index.ts";
import { reshape } from "../../lib/ops/shape.ts";
import { finiteDiff, randn, relError } from "./close.ts";

export interface OpInput {
  data: Float32Array | Int32Array;
  shape: number[];
  /** a differentiable input (f32 inputs are, unless false) */
  grad?: boolean;
}

export interface OpCheck {
  inputs: OpInput[];
  /** the op on the GPU */
  gpu: (...x: Tensor[]) => Tensor;
  /** its CPU reference on the same host arrays */
  ref: (...x: any[]) => ArrayLike<number>;
  /** gradients of the differentiable inputs, in order, for upstream gradient dout; default: finite differences of ref */
  refBackward?: (dout: Float32Array, ...x: any[]) => ArrayLike<number>[];
  /** normwise relative error bounds; atol: an absolute floor for values that cancel to near 0 */
  tol: { forward: number; backward?: number; atol?: number };
  /** finite-difference step (default 1e-3), when there is no refBackward */
  h?: number;
  seed?: number;
}

/** Σ out ⊙ dout: its gradient with respect to out is dout. */
function weighted(out: Tensor, dout: Float32Array): Tensor {
  const C = out.shape[out.shape.length - 1] ?? 1;
  const rows = out.size / C;
  return sumRows(reshape(sumRows(mul(reshape(out, [rows, C]), Tensor.from(dout, [rows, C]))), [1, rows]));
}

export async function checkOp(c: OpCheck): Promise<void> {
  const diff = c.inputs.map((x) => x.data instanceof Float32Array && x.grad !== false);
  const withGrad = c.tol.backward !== undefined && diff.some(Boolean);
  const { out, dout, grads } = await scopeAsync(async () => {
    const ts = c.inputs.map((x, i) => {
      const t = Tensor.from(x.data, x.shape, x.data instanceof Int32Array ? "i32" : "f32");
      return diff[i] && withGrad ? t.param() : t;
    });
    const y = c.gpu(...ts);
    const out = await y.toArray();
    const dout = randn(y.size, c.seed ?? 7);
    if (!withGrad) return { out, dout, grads: [] };
    backward(weighted(y, dout));
    const grads: (ArrayLike<number> | null)[] = [];
    for (let i = 0; i < ts.length; i++) grads.push(diff[i] ? await ts[i]!.grad!.toArray() : null);
    return { out, dout, grads };
  });
  const host = c.inputs.map((x) => x.data);
  const want = c.ref(...host);
  expect(out.length).toBe(want.length);
  const within = (got: ArrayLike<number>, ref: ArrayLike<number>, tol: number) => {
    let diff = 0,
      top = 0;
    for (let i = 0; i < ref.length; i++)
      (diff = Math.max(diff, Math.abs(got[i]! - ref[i]!))), (top = Math.max(top, Math.abs(ref[i]!)));
    return diff <= tol * top + (c.tol.atol ?? 0);
  };
  if (!within(out, want, c.tol.forward))
    throw new Error(`forward: relative error ${relError(out, want)} over ${c.tol.forward}`);
  if (!withGrad) return;
  const refGrads = c.refBackward
    ? c.refBackward(dout, ...host)
    : host.flatMap((x, i) => {
        if (!diff[i]) return [];
        const f = (xi: Float64Array) => {
          const args = host.map((h, j) => (j === i ? Float32Array.from(xi) : h));
          const y = c.ref(...args);
          let s = 0;
          for (let k = 0; k < y.length; k++) s += y[k]! * dout[k]!;
          return s;
        };
        return [finiteDiff(f, x, c.h ?? 1e-3)];
      });
  let k = 0;
  grads.forEach((g, i) => {
    if (!g) return;
    const ref = refGrads[k++]!;
    if (!within(g, ref, c.tol.backward!))
      throw new Error(`gradient of input ${i}: relative error ${relError(g, ref)} over ${c.tol.backward}`);
  });
}
