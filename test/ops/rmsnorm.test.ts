// rmsnorm against its CPU reference on odd shapes, forward and backward; the reference's backward
// against finite differences of its forward.
import { beforeAll, describe, expect, test } from "bun:test";
import { initGpu } from "../../lib/gpu/index.ts";
import { Tensor, scopeAsync } from "../../lib/tensor/index.ts";
import { add } from "../../lib/ops/index.ts";
import { rmsnorm, rmsnormBackward, rmsnormForward, rmsnormRef, rmsnormBackwardRef } from "../../lib/ops/rmsnorm.ts";
import { checkOp } from "../lib/check_op.ts";
import { randn, finiteDiff, expectAllClose } from "../lib/close.ts";

beforeAll(async () => {
  await initGpu();
});

describe("rmsnorm", () => {
  for (const [R, C] of [
    [1, 1],
    [7, 13],
    [129, 65],
    [64, 512],
  ] as const) {
    test(`(${R}, ${C})`, () =>
      checkOp({
        inputs: [
          { data: randn(R * C, 1), shape: [R, C] },
          { data: randn(C, 2), shape: [C] },
        ],
        gpu: (x, w) => rmsnorm(x, w, 1e-5),
        ref: (x, w) => rmsnormRef(x, w, R, C, 1e-5).y,
        refBackward: (dy, x, w) => {
          const r = rmsnormBackwardRef(x, w, dy, R, C, 1e-5);
          return [r.dx, r.dw];
        },
        // one f32 rounding per term; dx = rstd·(g - x·rstd²·mean(g·x)) cancels to ~eps/(x²+eps) when
        // C is 1: an absolute floor of f32 rounding on its O(1) terms
        tol: { forward: 1e-5, backward: 1e-4, atol: 1e-6 },
      }));
  }

  test("reference backward = finite differences", () => {
    const [R, C] = [3, 5];
    const X = randn(R * C, 4),
      W = randn(C, 5),
      dY = randn(R * C, 6);
    const f = (x: ArrayLike<number>, w: ArrayLike<number>) =>
      rmsnormRef(Float32Array.from(x), Float32Array.from(w), R, C, 1e-5).y.reduce((a, y, i) => a + y * dY[i]!, 0);
    const g = rmsnormBackwardRef(X, W, dY, R, C, 1e-5);
    expectAllClose(
      g.dx,
      finiteDiff((x) => f(x, W), X, 1e-3),
      { atol: 1e-3, rtol: 1e-3, label: "dx" },
    );
    expectAllClose(
      g.dw,
      finiteDiff((w) => f(X, w), W, 1e-3),
      { atol: 1e-3, rtol: 1e-3, label: "dw" },
    );
    expect(g.dw.length).toBe(C);
  });

  test("a residual's gradient added in the backward kernel: add's bits, dw unchanged", async () => {
    const [R, C] = [37, 96];
    const X = randn(R * C, 11),
      W = randn(C, 12),
      dY = randn(R * C, 13),
      dRes = randn(R * C, 14);
    const [fused, unfused, dwFused, dwPlain] = await scopeAsync(async () => {
      const x = Tensor.from(X, [R, C]),
        w = Tensor.from(W, [C]),
        dres = Tensor.from(dRes, [R, C]);
      const { rstd } = rmsnormForward(x, w, 1e-5);
      const f = rmsnormBackward(x, w, Tensor.from(dY, [R, C]), rstd, true, dres);
      const p = rmsnormBackward(x, w, Tensor.from(dY, [R, C]), rstd, true);
      return [await f.dx.toArray(), await add(dres, p.dx).toArray(), await f.dw!.toArray(), await p.dw!.toArray()];
    });
    expectAllClose(fused!, unfused!, { atol: 0, rtol: 0, label: "dx + dres" });
    expectAllClose(dwFused!, dwPlain!, { atol: 0, rtol: 0, label: "dw" });
    expect(Array.from(dwPlain!)).not.toEqual(new Array(C).fill(0));
  });
});
