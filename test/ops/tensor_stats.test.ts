// Tensor statistics (ckpt-inspect --stats): the GPU reduction against the host reference on a large
// tensor with NaN and Inf, and the host reference on values it must count exactly.
import { beforeAll, describe, expect, test } from "bun:test";
import { initGpu } from "../../lib/gpu/index.ts";
import { statsGpu, statsRef } from "../../lib/ops/tensor_stats.ts";

beforeAll(async () => {
  await initGpu();
});

describe("tensor stats", () => {
  test("GPU statistics of a large tensor agree with the host's", async () => {
    const n = (1 << 20) + 77;
    const x = Float32Array.from(
      { length: n },
      (_, i) => Math.sin(i) * 3 + (i % 1000 === 0 ? NaN : 0) + (i === 5 ? Infinity : 0),
    );
    const bytes = new Uint8Array(x.buffer);
    const a = await statsGpu("F32", bytes, n),
      b = statsRef("F32", bytes, n);
    expect(a.nan).toBe(b.nan);
    expect(a.inf).toBe(b.inf);
    // partial sums in f32 per workgroup, combined in f64: 1e-5 of the spread
    expect(a.mean!).toBeCloseTo(b.mean!, 5);
    expect(a.std!).toBeCloseTo(b.std!, 5);
    expect(a.min).toBe(b.min);
    expect(a.max).toBe(b.max);
    expect(Math.abs(a.l2 - b.l2) / b.l2).toBeLessThan(1e-5);
  });

  test("the host reference counts NaN and Inf apart and leaves them out of the moments", () => {
    const x = Float32Array.from([1, NaN, Infinity, 3, -Infinity]);
    expect(statsRef("F32", new Uint8Array(x.buffer), 5)).toMatchObject({ nan: 1, inf: 2, mean: 2, min: 1, max: 3 });
  });
});
