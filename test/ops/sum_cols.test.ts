// Column sums (the weight-gradient row reduction) against the CPU reference, plain and accumulating,
// on shapes that are not multiples of the kernel's 16-column tiles.
import { beforeAll, describe, expect, test } from "bun:test";
import { initGpu } from "../../lib/gpu/index.ts";
import { Tensor, scopeAsync } from "../../lib/tensor/index.ts";
import { sumCols, sumColsRef } from "../../lib/ops/sum_cols.ts";
import { randn, relError } from "../lib/close.ts";

beforeAll(async () => {
  await initGpu();
});

describe("sum_cols", () => {
  for (const [R, C] of [
    [1, 1],
    [37, 29],
    [1000, 17],
    [3, 512],
  ] as const)
    for (const accumulate of [false, true])
      test(`(${R}, ${C})${accumulate ? " += into an existing sum" : ""}`, async () => {
        const X = randn(R * C, 61),
          O = randn(C, 62);
        const got = await scopeAsync(() =>
          sumCols(Tensor.from(O, [C]), Tensor.from(X, [R, C]), R, C, accumulate).toArray(),
        );
        // f32 sums of up to 1000 values in a fixed order against f64
        expect(relError(got, sumColsRef(X, R, C, accumulate ? O : undefined))).toBeLessThan(1e-5);
      });
});
