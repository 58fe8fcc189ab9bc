// Embedding lookup against its CPU reference (exact: a copy), and the scatter-add gradient with
// repeated ids.
import { beforeAll, describe, test } from "bun:test";
import { initGpu } from "../../lib/gpu/index.ts";
import { embedding, embeddingRef, embeddingBackwardRef } from "../../lib/ops/embedding.ts";
import { checkOp } from "../lib/check_op.ts";
import { randn } from "../lib/close.ts";

beforeAll(async () => {
  await initGpu();
});

describe("embedding", () => {
  test("lookup and scatter-add gradient with repeated ids", () => {
    const [V, C, N] = [61, 13, 29];
    const ids = Int32Array.from({ length: N }, (_, i) => (i * 7) % 11); // repeats
    return checkOp({
      inputs: [
        { data: randn(V * C, 15), shape: [V, C] },
        { data: ids, shape: [N] },
      ],
      gpu: (w, i) => embedding(w, i),
      ref: (w) => embeddingRef(w, ids, C),
      refBackward: (dy) => [embeddingBackwardRef(dy, ids, V, C)],
      // the lookup is a copy; the gradient sums at most three rows per id in another order
      tol: { forward: 0, backward: 1e-6 },
    });
  });
});
