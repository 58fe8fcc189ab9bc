// Embedding lookup against its CPU reference (exact: a copy), and the table's gradient against
// embeddingBackwardRef bit for bit: the kernel sums each row's tokens in the reference's order
// (ascending position), so any other order, a lost or doubled token, or a race shows as a changed bit.
// The shapes cover the kernels' edges: the sort's tile (2048) crossed, vocabularies not a multiple of
// the gather's 8 rows or past 65535 row groups, channels not a multiple of 4 and past one block.
import { beforeAll, describe, expect, test } from "bun:test";
import { initGpu } from "../../lib/gpu/index.ts";
import { Tensor, scopeAsync } from "../../lib/tensor/index.ts";
import { embedding, embeddingBackward, embeddingRef, embeddingBackwardRef } from "../../lib/ops/embedding.ts";
import { matmul, matmulRef } from "../../lib/ops/matmul.ts";
import { Rng } from "../../lib/base/rng.ts";
import { checkOp } from "../lib/check_op.ts";
import { randn } from "../lib/close.ts";

beforeAll(async () => {
  await initGpu();
});

/** dW from the GPU, `runs` times over the same inputs. */
async function gpuBackward(dout: Float32Array, ids: Int32Array, V: number, C: number, runs: number) {
  return scopeAsync(async () => {
    const d = Tensor.from(dout, [ids.length, C]),
      i = Tensor.from(ids, [ids.length], "i32");
    const out: Float32Array[] = [];
    for (let r = 0; r < runs; r++) out.push((await embeddingBackward(d, i, V).toArray()) as Float32Array);
    return out;
  });
}

/** Indices where the bits differ (so -0 against 0 and NaNs count too), at most 5, and how many. */
function bitDiff(got: Float32Array, want: Float32Array): string {
  expect(got.length).toBe(want.length);
  const a = new Uint32Array(got.buffer, got.byteOffset, got.length),
    b = new Uint32Array(want.buffer, want.byteOffset, want.length);
  const bad: number[] = [];
  for (let k = 0; k < a.length; k++) if (a[k] !== b[k]) bad.push(k);
  return bad.length === 0
    ? ""
    : `${bad.length} differ, first ${bad.slice(0, 5).map((k) => `[${k}] ${got[k]} vs ${want[k]}`)}`;
}

function randomIds(N: number, below: number, seed: number): Int32Array {
  const rng = new Rng(seed);
  return Int32Array.from({ length: N }, () => rng.int(below));
}

describe("embedding", () => {
  test("lookup and gradient with repeated ids", () => {
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
      // the lookup is a copy; the gradient adds in the reference's order
      tol: { forward: 0, backward: 0 },
    });
  });

  // [label, V, C, ids]
  const cases: [string, number, number, Int32Array][] = [
    ["one token, one row, one channel", 1, 1, new Int32Array([0])],
    ["channels a multiple of 4, ids 30..36 never used, tokens past the sort tile", 37, 12, randomIds(3001, 30, 1)],
    ["516 channels: two blocks of 4-channel groups", 19, 516, randomIds(700, 19, 2)],
    ["130 channels: two blocks of single channels", 23, 130, randomIds(300, 23, 3)],
    ["every token the same id", 50, 20, new Int32Array(4096).fill(17)],
    ["tokens exactly the sort tile", 8, 5, randomIds(2048, 8, 4)],
    [
      "600000 rows: row groups past 65535, ids at both ends and around 8 · 65535",
      600000,
      2,
      Int32Array.from([599999, 0, 524280, 524279, 524287, 599999, 0, 524288, 3, 524280]),
    ],
  ];
  for (const [label, V, C, ids] of cases)
    test(`gradient bit for bit, the same every run: ${label} (V ${V}, C ${C}, N ${ids.length})`, async () => {
      const dout = randn(ids.length * C, V + C);
      const runs = await gpuBackward(dout, ids, V, C, 3);
      const want = embeddingBackwardRef(dout, ids, V, C);
      for (const got of runs) expect(bitDiff(got, want)).toBe("");
      // rows no token has are zero, not left over from the buffer pool
      const used = new Set(ids);
      let nonzero = 0;
      for (let v = 0; v < V; v++)
        if (!used.has(v)) for (let c = 0; c < C; c++) if (runs[0]![v * C + c] !== 0) nonzero++;
      expect(nonzero).toBe(0);
    });

  test("sums each row in ascending token position, across sort tiles", async () => {
    // id 4 at positions 17, 2500 and 4100 with gradients 1e8, 1, −1e8: in that order the 1 is lost
    // (the f32 spacing at 1e8 is 8), giving 0; adding 1e8 and −1e8 first would give 1
    const [V, C, N] = [6, 1, 5000];
    const ids = Int32Array.from({ length: N }, (_, t) => t % 4);
    const dout = randn(N * C, 9);
    for (const [t, g] of [
      [17, 1e8],
      [2500, 1],
      [4100, -1e8],
    ] as const) {
      ids[t] = 4;
      dout[t] = g;
    }
    const [got] = await gpuBackward(dout, ids, V, C, 1);
    expect(got![4]).toBe(0);
    expect(got![5]).toBe(0); // id 5: no token
    expect(bitDiff(got!, embeddingBackwardRef(dout, ids, V, C))).toBe("");
  });

  test("ids outside [0, V) add nothing", async () => {
    const [V, C] = [5, 4];
    const ids = Int32Array.from([2, -1, 5, 2, 0, 2147483647]);
    const dout = randn(ids.length * C, 11);
    const [got] = await gpuBackward(dout, ids, V, C, 1);
    const want = new Float32Array(V * C);
    for (let c = 0; c < C; c++) {
      want[2 * C + c] = dout[c]! + dout[3 * C + c]!;
      want[c] = dout[4 * C + c]!;
    }
    expect(bitDiff(got!, want)).toBe("");
  });

  test("no tokens: a zero gradient", async () => {
    const [got] = await gpuBackward(new Float32Array(0), new Int32Array(0), 3, 4, 1);
    expect(Array.from(got!)).toEqual(new Array(12).fill(0));
  });

  test("tied table: the head's gradient adds to the lookup's", () => {
    // logits = W[ids] · Wᵀ: W gets dyᵀ·E from the head and the rows of dy·W from the lookup
    const [V, C, N] = [23, 12, 40];
    const ids = randomIds(N, V, 5);
    return checkOp({
      inputs: [
        { data: randn(V * C, 16), shape: [V, C] },
        { data: ids, shape: [N] },
      ],
      gpu: (w, i) => matmul(embedding(w, i), w, { transB: true }),
      ref: (w) => matmulRef(embeddingRef(w, ids, C), w, N, V, C, { transB: true }),
      refBackward: (dy, w) => {
        const E = embeddingRef(w, ids, C);
        const lookup = embeddingBackwardRef(matmulRef(dy, w, N, C, V), ids, V, C);
        const head = matmulRef(dy, E, V, C, N, { transA: true });
        return [lookup.map((x, k) => x + head[k]!)];
      },
      // f32 products summed over at most 40 terms against f64 sums: a few units of 2^-24 · 40
      tol: { forward: 1e-5, backward: 1e-5 },
    });
  });
});
