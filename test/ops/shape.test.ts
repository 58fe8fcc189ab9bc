// reshape: a view of the same buffer (no copy), whose gradient is the upstream gradient reshaped back.
import { beforeAll, describe, expect, test } from "bun:test";
import { initGpu } from "../../lib/gpu/index.ts";
import { Tensor, scopeAsync } from "../../lib/tensor/index.ts";
import { reshape } from "../../lib/ops/shape.ts";
import { checkOp } from "../lib/check_op.ts";
import { randn } from "../lib/close.ts";

beforeAll(async () => {
  await initGpu();
});

describe("reshape", () => {
  test("(6, 35) as (14, 15): same values, same buffer, gradient passed through", async () => {
    await checkOp({
      inputs: [{ data: randn(210, 71), shape: [6, 35] }],
      gpu: (x) => reshape(x, [14, 15]),
      ref: (x) => x,
      refBackward: (d) => [d],
      tol: { forward: 0, backward: 0 },
    });
    await scopeAsync(async () => {
      const x = Tensor.from(randn(210, 71), [6, 35]);
      expect(reshape(x, [210]).buffer).toBe(x.buffer);
      expect(() => reshape(x, [7, 31])).toThrow(/has 210 elements, \[7,31\] needs 217/);
    });
  });
});
