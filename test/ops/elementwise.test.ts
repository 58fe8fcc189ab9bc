import { beforeAll, describe, expect, test } from "bun:test";
import { initGpu } from "../../lib/gpu/index.ts";
import { Tensor, scopeAsync } from "../../lib/tensor/index.ts";
import { backward } from "../../lib/ops/backward.ts";
import { add, mul, scale, addRef, mulRef, scaleRef, sumRows, fill } from "../../lib/ops/index.ts";
import { expectAllClose, randn } from "../lib/close.ts";

beforeAll(async () => {
  await initGpu();
});

// The issue's odd shapes; 512³ f32 (512 MiB) is over lavapipe's 128 MiB binding limit, so the
// largest case is (512, 512, 64) — 64 MiB per operand, still past one 4096-workgroup grid pass.
const SHAPES = [
  [1, 1, 1],
  [7, 13, 5],
  [129, 65, 257],
  [512, 512, 64],
];

describe("elementwise forward vs CPU reference (exact: one f32 rounding each side)", () => {
  for (const shape of SHAPES) {
    test(`[${shape}]`, async () => {
      const n = shape.reduce((x, y) => x * y);
      const A = randn(n, 1),
        B = randn(n, 2);
      const [s, p, k] = await scopeAsync(async () => {
        const a = Tensor.from(A, shape),
          b = Tensor.from(B, shape);
        return Promise.all([add(a, b).toArray(), mul(a, b).toArray(), scale(a, 0.37).toArray()]);
      });
      expectAllClose(s!, addRef(A, B), { rtol: 0, label: "add" });
      expectAllClose(p!, mulRef(A, B), { rtol: 0, label: "mul" });
      expectAllClose(k!, scaleRef(A, 0.37), { rtol: 0, label: "scale" });
    });
  }

  test("a tensor over the adapter's buffer limit is refused with a message", async () => {
    await scopeAsync(async () => {
      expect(() => Tensor.empty([1 << 30])).toThrow(
        /a tensor of shape \[1073741824\] \(4\.0 GiB\) is over this adapter's [\d.]+ (MiB|GiB) limit for one buffer; lower --batch-size/,
      );
    });
  });

  test("fill and shape mismatch", async () => {
    const f = await scopeAsync(() => fill([3, 5], 2.5).toArray());
    expect(Array.from(f)).toEqual(new Array(15).fill(2.5));
    await scopeAsync(async () => {
      expect(() => add(Tensor.empty([2, 3]), Tensor.empty([3, 2]))).toThrow(/shapes \[2,3\] and \[3,2\] differ/);
    });
  });
});

describe("elementwise backward", () => {
  test("loss = Σ ((a + b) ⊙ b) · 0.5: da = 0.5 b, db = 0.5 (a + 2b)", async () => {
    const [R, C] = [7, 13];
    const A = randn(R * C, 3),
      B = randn(R * C, 4);
    const [da, db] = await scopeAsync(async () => {
      const a = Tensor.from(A, [R, C]).param(),
        b = Tensor.from(B, [R, C]).param();
      backward(sumRows(scale(mul(add(a, b), b), 0.5)));
      return [await a.grad!.toArray(), await b.grad!.toArray()];
    });
    // exact up to a few roundings of values below 3 in magnitude
    expectAllClose(
      da!,
      B.map((b) => 0.5 * b),
      { atol: 1e-6, label: "da" },
    );
    expectAllClose(
      db!,
      A.map((a, i) => 0.5 * (a + 2 * B[i]!)),
      { atol: 1e-6, label: "db" },
    );
  });
});
