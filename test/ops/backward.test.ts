// backward(): gradients that meet are summed, leaves accumulate across calls, the seed can be scaled
// (mixed precision's loss scale), a deep graph does not overflow the stack, and a loss that depends
// on no parameter is refused.
import { beforeAll, describe, expect, test } from "bun:test";
import { initGpu } from "../../lib/gpu/index.ts";
import { Tensor, scope, scopeAsync, noGrad } from "../../lib/tensor/index.ts";
import { backward } from "../../lib/ops/backward.ts";
import { add, mul, scale, sumRows } from "../../lib/ops/index.ts";
import { expectAllClose, randn } from "../lib/close.ts";

beforeAll(async () => {
  await initGpu();
});

describe("backward", () => {
  test("a tensor used twice gets the sum of both gradients, and .grad accumulates across backward calls", async () => {
    const X = randn(10, 5);
    const g = await scopeAsync(async () => {
      const x = Tensor.from(X, [2, 5]).param();
      backward(sumRows(add(x, x))); // d/dx = 2
      backward(sumRows(mul(x, x))); // d/dx = 2x, added to the 2 already there
      return x.grad!.toArray();
    });
    expectAllClose(
      g,
      X.map((x) => 2 + 2 * x),
      { atol: 1e-6, label: "dx" },
    );
  });

  test("the seed's scale multiplies every gradient (the loss scale), exactly for a power of two", async () => {
    const X = randn(12, 8);
    const [g1, g4] = await scopeAsync(async () => {
      const a = Tensor.from(X, [3, 4]).param(),
        b = Tensor.from(X, [3, 4]).param();
      backward(sumRows(mul(a, a)));
      backward(sumRows(mul(b, b)), undefined, 4);
      return [await a.grad!.toArray(), await b.grad!.toArray()];
    });
    expect(Array.from(g4!)).toEqual(Array.from(g1!, (x) => 4 * x));
  });

  test("a chain of 20,000 ops (deeper than the JS stack for a recursive walk)", async () => {
    const g = await scopeAsync(async () => {
      const x = Tensor.from([1, 2, 3], [1, 3]).param();
      let y = x;
      for (let i = 0; i < 20_000; i++) y = scale(y, 1);
      backward(sumRows(y));
      return x.grad!.toArray();
    });
    expect(Array.from(g)).toEqual([1, 1, 1]);
  }, 120_000);

  test("a loss that depends on no parameter is refused", () => {
    scope(() => {
      const w = Tensor.from([1, 2, 3], [1, 3]).param();
      const y = noGrad(() => scale(w, 2));
      expect(() => backward(sumRows(y))).toThrow(/does not depend on any parameter/);
    });
  });
});
