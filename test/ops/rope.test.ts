// RoPE (rotate-half) against its CPU reference, whole heads and part of each head (latent
// attention's RoPE dims); a rotation's gradient is the inverse rotation of the upstream gradient.
import { beforeAll, describe, expect, test } from "bun:test";
import { initGpu } from "../../lib/gpu/index.ts";
import { Tensor, scopeAsync } from "../../lib/tensor/index.ts";
import { rope, ropeRef } from "../../lib/ops/rope.ts";
import { checkOp } from "../lib/check_op.ts";
import { randn } from "../lib/close.ts";

beforeAll(async () => {
  await initGpu();
});

describe("rope", () => {
  test("(23 tokens, 3 heads, 16), positions with restarts", () => {
    const [N, NH, D] = [23, 3, 16];
    const pos = Int32Array.from({ length: N }, (_, i) => (i < 11 ? i : i - 11) + (i > 19 ? 100 : 0));
    return checkOp({
      inputs: [
        { data: randn(N * NH * D, 7), shape: [N, NH, D] },
        { data: pos, shape: [N] },
      ],
      gpu: (x, p) => rope(x, p, 10000),
      ref: (x) => ropeRef(x, pos, N, NH, D, 10000),
      refBackward: (dy) => [ropeRef(dy, pos, N, NH, D, 10000, -1)],
      // sin/cos in f32 on the GPU against f64 on the host
      tol: { forward: 1e-5, backward: 1e-5 },
    });
  });

  test("dims [6, 10) of 14 rotate, the rest pass through exactly", async () => {
    const [N, NH, D, R, off] = [9, 2, 14, 4, 6];
    const X = randn(N * NH * D, 41);
    const pos = Int32Array.from({ length: N }, (_, i) => 3 * i);
    await checkOp({
      inputs: [
        { data: X, shape: [N, NH, D] },
        { data: pos, shape: [N] },
      ],
      gpu: (x, p) => rope(x, p, 500, { offset: off, dims: R }),
      ref: (x) => ropeRef(x, pos, N, NH, D, 500, 1, R, off),
      refBackward: (dy) => [ropeRef(dy, pos, N, NH, D, 500, -1, R, off)],
      tol: { forward: 1e-5, backward: 1e-5 },
    });
    const y = await scopeAsync(() =>
      rope(Tensor.from(X, [N, NH, D]), Tensor.from(pos, [N], "i32"), 500, { offset: off, dims: R }).toArray(),
    );
    for (let i = 0; i < y.length; i++) if (i % D < off || i % D >= off + R) expect(y[i]).toBe(X[i]!);
  });
});
