// A bias broadcast over rows (Qwen2's q/k/v projections): forward against the CPU reference, the
// input's gradient passed through, the bias's summed over rows.
import { beforeAll, describe, test } from "bun:test";
import { initGpu } from "../../lib/gpu/index.ts";
import { addBias, biasRef } from "../../lib/ops/bias.ts";
import { sumColsRef } from "../../lib/ops/sum_cols.ts";
import { checkOp } from "../lib/check_op.ts";
import { randn } from "../lib/close.ts";

beforeAll(async () => {
  await initGpu();
});

describe("bias", () => {
  for (const [R, C] of [
    [1, 1],
    [37, 29],
    [300, 6],
  ] as const)
    test(`(${R}, ${C})`, () =>
      checkOp({
        inputs: [
          { data: randn(R * C, 3), shape: [R, C] },
          { data: randn(C, 4), shape: [C] },
        ],
        gpu: (x, b) => addBias(x, b),
        ref: (x, b) => biasRef(x, b),
        refBackward: (dy) => [dy, sumColsRef(dy, R, C)],
        // one f32 add forward; column sums of up to 300 values in a fixed order against f64
        tol: { forward: 1e-7, backward: 1e-5 },
      }));
});
