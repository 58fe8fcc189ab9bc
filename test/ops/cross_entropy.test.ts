// Cross-entropy (label smoothing, ignore index, a window normalizer) and per-token log-probs against
// their CPU references; the references' gradients against finite differences.
import { beforeAll, describe, expect, test } from "bun:test";
import { initGpu } from "../../lib/gpu/index.ts";
import { Tensor, scopeAsync } from "../../lib/tensor/index.ts";
import { backward } from "../../lib/ops/backward.ts";
import { crossEntropy, crossEntropyRef, logprobs, logprobsRef, IGNORE_INDEX } from "../../lib/ops/cross_entropy.ts";
import { checkOp } from "../lib/check_op.ts";
import { randn, relError, finiteDiff, expectAllClose } from "../lib/close.ts";

beforeAll(async () => {
  await initGpu();
});

describe("cross entropy", () => {
  for (const [N, V, eps] of [
    [1, 1, 0],
    [7, 61, 0],
    [33, 257, 0.1],
    [16, 8192, 0],
  ] as const) {
    test(`(${N}, ${V}) smoothing ${eps}, with ignored rows`, async () => {
      const Z = randn(N * V, 17).map((x) => 3 * x);
      const T = Int32Array.from({ length: N }, (_, i) => (i % 5 === 3 ? IGNORE_INDEX : (i * 31) % V));
      // the loss is a scalar, and its gradient overwrites the logits' buffer: checked directly
      const [loss, dz] = await scopeAsync(async () => {
        const z = Tensor.from(Z, [N, V]).param();
        const l = crossEntropy(z, Tensor.from(T, [N], "i32"), { labelSmoothing: eps });
        const lv = await l.toArray();
        backward(l);
        return [lv[0]!, await z.grad!.toArray()];
      });
      const ref = crossEntropyRef(Z, T, N, V, { labelSmoothing: eps });
      expect(Math.abs(loss - ref.loss)).toBeLessThan(1e-5 * Math.max(1, Math.abs(ref.loss)));
      expect(relError(dz, ref.dz)).toBeLessThan(1e-5);
    });
  }

  test("a given normalizer replaces the count (loss over a whole accumulation window)", async () => {
    const [N, V] = [6, 10];
    const Z = randn(N * V, 18),
      T = Int32Array.from([1, 2, 3, 4, 5, 6]);
    const loss = await scopeAsync(
      async () =>
        (await crossEntropy(Tensor.from(Z, [N, V]), Tensor.from(T, [N], "i32"), { normalizer: 24 }).toArray())[0]!,
    );
    expect(loss).toBeCloseTo(crossEntropyRef(Z, T, N, V, { normalizer: 24 }).loss, 5);
  });

  test("reference gradient = finite differences", () => {
    const [N, V] = [3, 7];
    const Z = randn(N * V, 19),
      T = [2, IGNORE_INDEX, 6];
    const r = crossEntropyRef(Z, T, N, V, { labelSmoothing: 0.2 });
    expectAllClose(
      r.dz,
      finiteDiff((z) => crossEntropyRef(Float32Array.from(z), T, N, V, { labelSmoothing: 0.2 }).loss, Z, 1e-3),
      { atol: 1e-4, rtol: 1e-3, label: "dz" },
    );
  });
});

describe("log-probs", () => {
  test("forward and backward", () => {
    const [N, V] = [9, 50];
    const T = Int32Array.from({ length: N }, (_, i) => (i === 4 ? IGNORE_INDEX : i * 3));
    return checkOp({
      inputs: [
        { data: randn(N * V, 20), shape: [N, V] },
        { data: T, shape: [N] },
      ],
      gpu: (z, t) => logprobs(z, t),
      ref: (z) => logprobsRef(z, T, N, V).lp,
      refBackward: (dO, z) => [logprobsRef(z, T, N, V, dO).dz],
      // a log-softmax over 50 in f32 against f64
      tol: { forward: 1e-6, backward: 1e-5 },
    });
  });
});
