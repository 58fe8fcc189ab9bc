// RoPE (rotate-half, and interleaved pairs as DeepSeek-V2's checkpoints use) against its CPU reference,
// whole heads and part of each head (latent attention's RoPE dims), with a cos/sin factor (YaRN's);
// a rotation's gradient is the inverse rotation of the upstream gradient (times the same factor).
import { beforeAll, describe, expect, test } from "bun:test";
import { initGpu } from "../../lib/gpu/index.ts";
import { Tensor, scopeAsync } from "../../lib/tensor/index.ts";
import { invFreq, rope, ropeRef, type RopeFreqs } from "../../lib/ops/rope.ts";
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

  test("interleaved pairs with a cos/sin factor: dims [4, 10) of 12, and pairs (2i, 2i+1) by hand", async () => {
    const [N, NH, D, R, off] = [7, 3, 12, 6, 4];
    const X = randn(N * NH * D, 43);
    const pos = Int32Array.from({ length: N }, (_, i) => 5 * i + 1);
    const f: RopeFreqs = { invFreq: Float32Array.from([0.9, 0.3, 0.01]), scale: 1.25, interleaved: true };
    await checkOp({
      inputs: [
        { data: X, shape: [N, NH, D] },
        { data: pos, shape: [N] },
      ],
      gpu: (x, p) => rope(x, p, f, { offset: off, dims: R }),
      ref: (x) => ropeRef(x, pos, N, NH, D, 0, 1, R, off, f),
      // the transpose of scale·rotation is scale·(inverse rotation)
      refBackward: (dy) => [ropeRef(dy, pos, N, NH, D, 0, -1, R, off, f)],
      tol: { forward: 1e-5, backward: 1e-5 },
    });
    // the reference itself, checked by hand on token 2, head 1, pair 1 (dims off+2, off+3)
    const y = ropeRef(X, pos, N, NH, D, 0, 1, R, off, f);
    const base = (2 * NH + 1) * D + off + 2;
    const ang = Math.fround(pos[2]! * f.invFreq[1]!);
    const [a, b] = [X[base]!, X[base + 1]!];
    expect(y[base]!).toBeCloseTo(1.25 * (a * Math.cos(ang) - b * Math.sin(ang)), 6);
    expect(y[base + 1]!).toBeCloseTo(1.25 * (b * Math.cos(ang) + a * Math.sin(ang)), 6);
  });

  test("a plain table given as frequencies equals the theta form exactly", async () => {
    const [N, NH, D] = [5, 2, 8];
    const X = randn(N * NH * D, 44);
    const pos = Int32Array.from({ length: N }, (_, i) => i);
    const run = (f: number | RopeFreqs) =>
      scopeAsync(() => rope(Tensor.from(X, [N, NH, D]), Tensor.from(pos, [N], "i32"), f).toArray());
    expect(await run({ invFreq: invFreq(D, 1000), scale: 1, interleaved: false })).toEqual(await run(1000));
  });
});
