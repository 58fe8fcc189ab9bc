// checkpoint(fn, inputs): the output, the input gradients and the gradients of the parameters fn
// closes over are the plain path's bit for bit — also where a gradient meets uses inside and outside
// the checkpoint, across accumulated backward calls, and through nested checkpoints — while fn's
// activations are freed after the forward. Misuse (a tape tensor read without being an input) is refused.
import { beforeAll, describe, expect, test } from "bun:test";
import { initGpu, poolStats } from "../../lib/gpu/index.ts";
import { Tensor, scopeAsync, noGrad, zeroGrad } from "../../lib/tensor/index.ts";
import { checkpoint } from "../../lib/tensor/checkpoint.ts";
import { backward } from "../../lib/ops/backward.ts";
import { add, matmul, mul, scale, sumRows } from "../../lib/ops/index.ts";
import { rmsnorm } from "../../lib/ops/rmsnorm.ts";
import { crossEntropy } from "../../lib/ops/cross_entropy.ts";
import { randn } from "../lib/close.ts";

beforeAll(async () => {
  await initGpu();
});

const n = 6,
  C = 8,
  H = 12,
  V = 10;

/** Fresh parameters from fixed values: g (C), W1 (H, C), W2 (C, H), E (V, C) — E is also the head. */
function params() {
  return {
    g: Tensor.from(randn(C, 1), [C]).param(),
    W1: Tensor.from(randn(H * C, 2), [H, C]).param(),
    W2: Tensor.from(randn(C * H, 3), [C, H]).param(),
    E: Tensor.from(randn(V * C, 4), [V, C]).param(),
  };
}
type P = ReturnType<typeof params>;

/**
 * A layer where x meets four uses and W1 and E two each: y = x + ½x + W2·((W1·h) ⊙ (W1·x)) + Eᵀ(E·h),
 * h = rmsnorm(x)·g. Three or more gradients meeting make the summation order visible in the bits.
 */
function layer(p: P, x: Tensor): Tensor {
  const h = rmsnorm(x, p.g, 1e-5);
  const u = mul(matmul(h, p.W1, { transB: true }), matmul(x, p.W1, { transB: true })); // (n, H)
  const e = matmul(matmul(h, p.E, { transB: true }), p.E); // (n, C)
  return add(add(matmul(u, p.W2, { transB: true }), e), add(x, scale(x, 0.5)));
}

/** Two layers (the second one's input is the first one's output), then E as the head: a loss. */
function loss(p: P, x: Tensor, ck: (f: (x: Tensor) => Tensor, x: Tensor) => Tensor): Tensor {
  const y = ck(
    (a) => layer(p, a),
    ck((a) => layer(p, a), x),
  );
  const targets = Tensor.from([1, 3, 5, 7, 9, 0], [n], "i32");
  return crossEntropy(matmul(y, p.E, { transB: true }), targets);
}

const plain = (f: (x: Tensor) => Tensor, x: Tensor) => f(x);
const checkpointed = (f: (x: Tensor) => Tensor, x: Tensor) => checkpoint(f, [x]);
const nested = (f: (x: Tensor) => Tensor, x: Tensor) => checkpoint((a) => checkpoint(f, [a]), [x]);

/** Loss, dx and every parameter's .grad after two accumulated backward calls (two micro-batches). */
async function run(ck: typeof plain): Promise<Record<string, number[]>> {
  return scopeAsync(async () => {
    const p = params();
    const x = Tensor.from(randn(n * C, 5), [n, C]).param();
    const out: Record<string, number[]> = {};
    for (const k of [0, 1]) {
      const l = loss(p, k ? scale(x, 0.75) : x, ck);
      backward(l);
      out[`loss${k}`] = Array.from(await l.toArray());
    }
    out.dx = Array.from(await x.grad!.toArray());
    for (const [name, t] of Object.entries(p)) out[`d${name}`] = Array.from(await t.grad!.toArray());
    zeroGrad([x, ...Object.values(p)]);
    return out;
  });
}

describe("checkpoint", () => {
  test("loss, input and closed-over parameter gradients are the plain path's bit for bit", async () => {
    const want = await run(plain);
    const got = await run(checkpointed);
    expect(Object.keys(got)).toEqual(["loss0", "loss1", "dx", "dg", "dW1", "dW2", "dE"]);
    for (const k of Object.keys(want)) expect({ k, v: got[k] }).toEqual({ k, v: want[k] });
    // not vacuous: every gradient has nonzero entries
    for (const k of ["dx", "dg", "dW1", "dW2", "dE"]) expect(want[k]!.some((v) => v !== 0)).toBe(true);
  });

  test("nested checkpoints give the same bits", async () => {
    const want = await run(plain);
    const got = await run(nested);
    for (const k of Object.keys(want)) expect({ k, v: got[k] }).toEqual({ k, v: want[k] });
  });

  test("the forward keeps only the output: fn's activations go back to the pool", async () => {
    await scopeAsync(async () => {
      const p = params();
      const x = Tensor.from(randn(n * C, 5), [n, C]).param();
      const before = poolStats().liveBytes;
      const y = checkpoint((a) => layer(p, a), [x]);
      // y (n, C) f32 in its 256-byte size class is all that stays
      expect(poolStats().liveBytes - before).toBe(256);
      const z = layer(p, x);
      expect(poolStats().liveBytes - before).toBeGreaterThan(256 * 10);
      expect(Array.from(await y.toArray())).toEqual(Array.from(await z.toArray()));
      expect(y.node?.op).toBe("checkpoint");
      // the closed-over parameters are inputs of its node, after x, so the walk reaches them
      expect(y.node!.inputs.length).toBe(5);
      expect(y.node!.inputs[0]).toBe(x);
      expect(new Set(y.node!.inputs.slice(1))).toEqual(new Set(Object.values(p)));
    });
  });

  test("under noGrad it is fn itself; with nothing trained it records nothing", async () => {
    await scopeAsync(async () => {
      const p = params();
      const x = Tensor.from(randn(n * C, 5), [n, C]);
      const y = noGrad(() => checkpoint((a) => layer(p, a), [x]));
      expect(y.node).toBeNull();
      const frozen = { ...p, g: Tensor.from(randn(C, 1), [C]) };
      for (const t of [frozen.W1, frozen.W2, frozen.E]) t.requiresGrad = false;
      const z = checkpoint((a) => layer(frozen, a), [x]);
      expect([z.node, z.requiresGrad]).toEqual([null, false]);
    });
  });

  test("a tape tensor that fn reads without taking it as an input is refused", async () => {
    await scopeAsync(async () => {
      const p = params();
      const x = Tensor.from(randn(n * C, 5), [n, C]).param();
      const outside = scale(x, 2); // has a tape: its gradient would be lost
      expect(() => checkpoint((a) => add(layer(p, a), outside), [x])).toThrow(
        "checkpoint: fn read a tensor [6,8] that needs gradients without taking it as an input; pass it in inputs",
      );
      expect(() => checkpoint((a) => a, [x])).toThrow("checkpoint: fn returned one of its inputs");
      expect(() => checkpoint((a, b) => add(a, b!), [x, x])).toThrow("checkpoint: an input is given twice");
      // the refused calls left nothing recorded on x
      backward(sumRows(sumRows(x)));
      expect(Array.from(await x.grad!.toArray())).toEqual(new Array(n * C).fill(1));
      zeroGrad([x]);
    });
  });
});
