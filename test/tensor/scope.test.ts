import { beforeAll, describe, expect, test } from "bun:test";
import { initGpu, poolStats } from "../../lib/gpu/index.ts";
import { Tensor, scope, keep, noGrad } from "../../lib/tensor/index.ts";
import { add, scale } from "../../lib/ops/index.ts";

beforeAll(async () => {
  await initGpu();
});

describe("scope and autograd bookkeeping", () => {
  test("a scope disposes what it created, except what it returns and what keep() took", () => {
    const before = poolStats().liveBytes;
    let inner!: Tensor, kept!: Tensor;
    const ret = scope(() => {
      inner = Tensor.empty([100]);
      kept = keep(Tensor.empty([100]));
      return { out: Tensor.empty([100]) };
    });
    expect(inner.disposed).toBe(true);
    expect(kept.disposed).toBe(false);
    expect(ret.out.disposed).toBe(false);
    ret.out.dispose();
    kept.dispose();
    expect(poolStats().liveBytes).toBe(before);
  });

  test("a throwing scope still frees its tensors", () => {
    const before = poolStats().liveBytes;
    expect(() =>
      scope(() => {
        Tensor.empty([1000]);
        throw new Error("boom");
      }),
    ).toThrow("boom");
    expect(poolStats().liveBytes).toBe(before);
  });

  test("noGrad records nothing; an op on a parameter records its node", () => {
    scope(() => {
      const w = Tensor.from([1, 2, 3], [3]).param();
      const y = noGrad(() => scale(w, 2));
      expect(y.requiresGrad).toBe(false);
      expect(y.node).toBeNull();
      const z = add(w, w);
      expect(z.requiresGrad).toBe(true);
      expect(z.node?.op).toBe("add");
    });
  });

  test("Tensor.from checks its length; shapes must be whole numbers", () => {
    scope(() => {
      expect(() => Tensor.from([1, 2, 3], [2, 2])).toThrow(/3 values for shape \[2,2\]/);
      expect(() => Tensor.empty([2.5])).toThrow(/bad tensor shape/);
    });
  });
});
