import { beforeAll, describe, expect, test } from "bun:test";
import { initGpu } from "../../lib/gpu/index.ts";
import { Tensor, scopeAsync } from "../../lib/tensor/index.ts";
import { backward } from "../../lib/ops/backward.ts";
import { reduceRows, reduceRowsRef, reduceRowsBackwardRef, sumRows, mul, type ReduceOp } from "../../lib/ops/index.ts";
import { expectAllClose, randn, relError } from "../lib/close.ts";

beforeAll(async () => {
  await initGpu();
});

// rows × columns: the odd shapes read as (R·T, C) — (1,1), (7·13, 5), (129·65, 257), and
// (512·64, 512): 512·512·512 f32 is over lavapipe's 128 MiB binding limit.
const SHAPES: [number, number][] = [
  [1, 1],
  [91, 5],
  [8385, 257],
  [512 * 64, 512],
];
const OPS: ReduceOp[] = ["sum", "mean", "max"];

describe("row reductions vs CPU reference", () => {
  for (const [R, C] of SHAPES)
    for (const op of OPS) {
      test(`${op} (${R}, ${C})`, async () => {
        const X = randn(R * C, R + C);
        const got = await scopeAsync(() => reduceRows(Tensor.from(X, [R, C]), op).toArray());
        const { out } = reduceRowsRef(X, R, C, op);
        // sums of up to 512 terms in a different order: normwise relative error ~1e-6 ≪ 1e-4
        if (op === "max") expectAllClose(got, out, { rtol: 0, label: op });
        else expect(relError(got, out)).toBeLessThan(1e-4);
      });
    }

  test("max picks the first of equal maxima (and its backward routes there)", async () => {
    const X = Float32Array.from([1, 3, 3, 2, -5, -5, -5, -5]);
    const [m, dx] = await scopeAsync(async () => {
      const x = Tensor.from(X, [2, 4]).param();
      const out = reduceRows(x, "max");
      backward(out);
      return [await out.toArray(), await x.grad!.toArray()];
    });
    expect(Array.from(m!)).toEqual([3, -5]);
    expect(Array.from(dx!)).toEqual([0, 1, 0, 0, 1, 0, 0, 0]);
  });
});

describe("row reductions backward vs reference", () => {
  for (const op of OPS) {
    test(`${op} (37, 29)`, async () => {
      const [R, C] = [37, 29];
      const X = randn(R * C, 9),
        W = randn(R, 10);
      const dx = await scopeAsync(async () => {
        const x = Tensor.from(X, [R, C]).param();
        backward(sumRows(mul(reduceRows(x, op), Tensor.from(W, [R]))));
        return x.grad!.toArray();
      });
      const { idx } = reduceRowsRef(X, R, C, op);
      expectAllClose(dx, reduceRowsBackwardRef(W, idx, R, C, op), { atol: 1e-7, rtol: 1e-6, label: op });
    });
  }
});
