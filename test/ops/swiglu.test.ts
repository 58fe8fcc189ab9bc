// SwiGLU (silu(g) ⊙ u) against its CPU reference, forward and backward; the reference's backward
// against finite differences of its forward.
import { beforeAll, describe, test } from "bun:test";
import { initGpu } from "../../lib/gpu/index.ts";
import { swiglu, swigluRef, swigluBackwardRef } from "../../lib/ops/swiglu.ts";
import { checkOp } from "../lib/check_op.ts";
import { randn, finiteDiff, expectAllClose } from "../lib/close.ts";

beforeAll(async () => {
  await initGpu();
});

describe("swiglu", () => {
  for (const n of [1, 7 * 13, 129 * 65 * 3])
    test(`n = ${n}`, () =>
      checkOp({
        // gates up to ±4: the sigmoid's tails, where silu's derivative changes fastest
        inputs: [
          { data: randn(n, 9).map((x) => 4 * x), shape: [n] },
          { data: randn(n, 10), shape: [n] },
        ],
        gpu: (g, u) => swiglu(g, u),
        ref: (g, u) => swigluRef(g, u),
        refBackward: (dh, g, u) => {
          const r = swigluBackwardRef(g, u, dh);
          return [r.dg, r.du];
        },
        tol: { forward: 1e-5, backward: 1e-5 },
      }));

  test("reference backward = finite differences", () => {
    const G = randn(9, 12).map((x) => 3 * x),
      U = randn(9, 13),
      dH = randn(9, 14);
    const f = (g: ArrayLike<number>, u: ArrayLike<number>) =>
      swigluRef(Float32Array.from(g), Float32Array.from(u)).reduce((a, y, i) => a + y * dH[i]!, 0);
    const r = swigluBackwardRef(G, U, dH);
    expectAllClose(
      r.dg,
      finiteDiff((g) => f(g, U), G, 1e-3),
      { atol: 1e-3, rtol: 1e-3, label: "dg" },
    );
    expectAllClose(
      r.du,
      finiteDiff((u) => f(G, u), U, 1e-3),
      { atol: 1e-3, rtol: 1e-3, label: "du" },
    );
  });
});
