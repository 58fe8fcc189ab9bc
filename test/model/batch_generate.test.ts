// Batched generation: the decoding kernels against their CPU references, then generateBatch against
// generating each sequence alone (generate.ts) for grouped-query attention (the PyTorch-made fixture)
// and latent attention, with prompts of different lengths, repeated prompts (a GRPO group) and
// sequences that stop at different steps.
import { beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { initGpu } from "../../lib/gpu/index.ts";
import { Tensor, scopeAsync } from "../../lib/tensor/index.ts";
import {
  attentionDecodeInto,
  attentionDecodeRef,
  attentionRef,
  cacheAppendInto,
  cacheAppendRef,
  type DecodeDims,
} from "../../lib/ops/attention.ts";
import { loadModel } from "../../lib/model/checkpoint.ts";
import { parseModelConfig, type ModelConfig } from "../../lib/model/config.ts";
import { disposeParams, initParams, type ModelParams } from "../../lib/model/params.ts";
import { generate, type Generation } from "../../lib/model/generate.ts";
import { generateBatch, type BatchItem } from "../../lib/model/generate_batch.ts";
import { expectAllClose, randn } from "../lib/close.ts";

const FIX = join(import.meta.dir, "..", "reference", "fixtures");

beforeAll(async () => {
  await initGpu();
});

describe("attention_decode: each row over its own span of cache rows", () => {
  // spans of 1, 70 and 137 keys (one, two and three tiles of 64), in slots 2, 0 and 3 of 4
  const maxT = 150,
    slots = [2, 0, 3],
    counts = [1, 70, 137];
  const span = slots.flatMap((s, b) => [s * maxT, counts[b]!]);
  const B = slots.length,
    rows = 4 * maxT;

  /** attention_decode's o (B, H, D) for queries q (B, H, D) over cache rows k, v (rows, KV, D). */
  function gqaDecode(q: Float32Array, k: Float32Array, v: Float32Array, d: DecodeDims): Promise<Float32Array> {
    return scopeAsync(async () => {
      const o = Tensor.empty([B, d.H, d.D]);
      attentionDecodeInto(
        o,
        Tensor.from(q, [B, d.H, d.D]),
        Tensor.from(k, [rows, d.KV * d.D]),
        Tensor.from(v, [rows, d.KV * d.D]),
        Tensor.from(span, [B, 2], "u32"),
        d,
      );
      return o.toArray();
    });
  }

  test("grouped-query attention (3 query heads per kv head)", async () => {
    const H = 6,
      KV = 2,
      D = 16;
    const d = { B, H, KV, D, DV: D, VS: D, scale: 1 / Math.sqrt(D) };
    const q = randn(B * H * D, 1),
      k = randn(rows * KV * D, 2),
      v = randn(rows * KV * D, 3);
    const got = await gqaDecode(q, k, v, d);
    // f32 scores and sums of up to 137 terms of size ~1 against f64: a few ulps of the outputs
    expectAllClose(got, attentionDecodeRef(q, k, v, span, d), { atol: 2e-6, rtol: 1e-5, label: "o" });
  });

  // Sliding windows (Mistral): the query, last of its span, sees the span's last `window` rows; the
  // expected rows are the training reference's last query over the whole sequence with that window.
  test("sliding windows 1 and 50 over spans of 1, 70 and 137 rows equal the full-sequence reference", async () => {
    const H = 6,
      KV = 2,
      D = 16;
    const q = randn(B * H * D, 7),
      k = randn(rows * KV * D, 8),
      v = randn(rows * KV * D, 9);
    for (const window of [1, 50]) {
      const d = { B, H, KV, D, DV: D, VS: D, scale: 1 / Math.sqrt(D), window };
      const got = await gqaDecode(q, k, v, d);
      const want = new Float32Array(B * H * D);
      for (let b = 0; b < B; b++) {
        const [first, n] = [span[2 * b]!, span[2 * b + 1]!];
        const Q = new Float32Array(n * H * D);
        Q.set(q.subarray(b * H * D, (b + 1) * H * D), (n - 1) * H * D);
        const seq = (x: Float32Array) => x.subarray(first * KV * D, (first + n) * KV * D);
        const pos = Int32Array.from({ length: n }, (_, i) => i);
        const dims = { B: 1, T: n, Tk: n, H, KV, D, qOffset: 0, scale: d.scale, window };
        want.set(attentionRef(Q, seq(k), seq(v), pos, dims).o.subarray((n - 1) * H * D), b * H * D);
      }
      expectAllClose(got, want, { atol: 2e-6, rtol: 1e-5, label: `o, window ${window}` });
      expectAllClose(attentionDecodeRef(q, k, v, span, d), want, { atol: 1e-7, rtol: 1e-6, label: "reference" });
    }
  });

  test("latent attention: W_UK and W_UV absorbed from kv_b_proj, values the rows' latent part", async () => {
    const H = 3,
      r = 20,
      dr = 4,
      dn = 6,
      dv = 5;
    const d = { B, H, KV: 1, D: r + dr, DV: r, VS: r + dr, scale: 1 / Math.sqrt(dn + dr), latent: { dn, dout: dv } };
    const q = randn(B * H * (dn + dr), 4),
      cache = randn(rows * (r + dr), 5),
      wkv = randn(H * (dn + dv) * r, 6);
    const got = await scopeAsync(async () => {
      const o = Tensor.empty([B, H, dv]);
      const rowsT = Tensor.from(cache, [rows, r + dr]);
      attentionDecodeInto(
        o,
        Tensor.from(q, [B, H, dn + dr]),
        rowsT,
        rowsT,
        Tensor.from(span, [B, 2], "u32"),
        d,
        Tensor.from(wkv, [H * (dn + dv), r]),
      );
      return o.toArray();
    });
    // two more f32 products of 6 and 20 terms around the softmax: a few more ulps
    expectAllClose(got, attentionDecodeRef(q, cache, cache, span, d, wkv), { atol: 1e-5, rtol: 1e-5, label: "o" });
  });

  test("attention_decode_append writes each row's vector into its cache row at a column offset", async () => {
    const CW = 10,
      at = [7, 0, 3];
    const src = randn(3 * 4, 7),
      before = randn(8 * CW, 8);
    const want = Float32Array.from(before);
    cacheAppendRef(want, src, at, CW, 6);
    const got = await scopeAsync(async () => {
      const cache = Tensor.from(before, [8, CW]);
      cacheAppendInto(cache, Tensor.from(src, [3, 4]), Tensor.from(at, [3], "u32"), CW, 6);
      return cache.toArray();
    });
    expect(Array.from(got)).toEqual(Array.from(want));
  });
});

type Model = { config: ModelConfig; params: ModelParams };
const mla = (qLora: number): Model => {
  const config = parseModelConfig({
    vocab_size: 97,
    hidden_size: 48,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    intermediate_size: 96,
    attn_type: "mla",
    kv_lora_rank: 12,
    q_lora_rank: qLora,
    qk_nope_head_dim: 8,
    qk_rope_head_dim: 4,
    v_head_dim: 6,
    max_position_embeddings: 128,
  });
  return { config, params: initParams({ ...config, initializer_range: 0.4 }, 9 + qLora) };
};
const MODELS: [string, () => Model][] = [
  ["grouped-query attention (the PyTorch-made checkpoint)", () => loadModel(join(FIX, "hf-llama"))],
  ["latent attention", () => mla(0)],
  ["latent attention with low-rank queries", () => mla(6)],
];

// 5 prompts of 3, 1, 75 (past one 64-key tile of the decoding kernel), 3 (the first again) and 2 tokens
const PROMPTS = [[1, 9, 4], [5], Array.from({ length: 75 }, (_, i) => (i * 37 + 11) % 97), [1, 9, 4], [3, 3]];
const greedy = { temperature: 0, topK: 0, topP: 1 };

const alone = (m: Model, it: BatchItem, o: { maxNewTokens: number; temperature: number; topK: number; topP: number }) =>
  generate(m.config, m.params, it.prompt, { ...o, stop: it.stop, seed: it.seed ?? 0 });

/** The first step from k on whose token was not sampled before (greedy decoding repeats some): a stop id that ends the run there. */
const firstNew = (ids: number[], k: number) => {
  while (ids.indexOf(ids[k]!) !== k) k++;
  return k;
};

/** Same ids and finish; log-probs equal within 1e-5 (see the test's comment). */
function expectSame(batch: Generation[], single: Generation[]) {
  expect(batch.map((g) => g.ids)).toEqual(single.map((g) => g.ids));
  expect(batch.map((g) => g.finish)).toEqual(single.map((g) => g.finish));
  batch.forEach((g, i) => expectAllClose(g.logprobs, single[i]!.logprobs, { atol: 1e-5, rtol: 0, label: `seq ${i}` }));
}

describe("generateBatch gives each sequence what generating it alone gives", () => {
  // Every op of a step works row by row with the same arithmetic in any batch, and here the log-probs
  // come out bit for bit equal; 1e-5 (about 20 f32 ulps of a log-prob near -4.6 = log(1/97)) leaves
  // room for a prefill attention kernel that tiles keys from the packed sequence's start, where a
  // prompt packed at another offset would round differently.
  for (const [name, make] of MODELS) {
    test(`${name}: temperature 0, prompts of different lengths, some stopping early`, async () => {
      const m = make();
      const maxNewTokens = 12;
      const free = [];
      for (const prompt of PROMPTS) free.push(await alone(m, { prompt, stop: [] }, { ...greedy, maxNewTokens }));
      // prompt i stops at a token of its free run from step 2, 6, never, 9 (the repeated prompt), never
      const at = [1, 5, -1, 8, -1].map((k, i) => (k < 0 ? k : firstNew(free[i]!.ids, k)));
      const items = PROMPTS.map((prompt, i) => ({ prompt, stop: at[i]! < 0 ? [] : [free[i]!.ids[at[i]!]!] }));
      const single = [];
      for (const it of items) single.push(await alone(m, it, { ...greedy, maxNewTokens }));
      const batch = await generateBatch(m.config, m.params, items, { ...greedy, maxNewTokens });
      expectSame(batch, single);
      expect(single.map((g) => g.finish)).toEqual(["stop", "stop", "length", "stop", "length"]);
      // the repeated prompt shares its prefill and runs on past where the first copy stopped
      expect(single[3]!.ids).toEqual(free[0]!.ids.slice(0, single[3]!.ids.length));
      expect(single[3]!.ids.length).toBeGreaterThan(single[0]!.ids.length);
      disposeParams(m.params);
    });

    test(`${name}: sampling at temperature 0.9, a sequence's tokens do not depend on the rest of the batch`, async () => {
      const m = make();
      const o = { temperature: 0.9, topK: 20, topP: 0.95, maxNewTokens: 10 };
      const items = PROMPTS.map((prompt, i) => ({ prompt, stop: [], seed: 100 + i }));
      const single = [];
      for (const it of items) single.push(await alone(m, it, o));
      expectSame(await generateBatch(m.config, m.params, items, o), single);
      // the same sequence among others, alone in a batch of 1, and with its generator passed in
      const [x] = await generateBatch(m.config, m.params, [items[2]!], o);
      expectSame([x!], [single[2]!]);
      const { Rng } = await import("../../lib/base/rng.ts");
      const [y] = await generateBatch(m.config, m.params, [{ ...items[1]!, seed: undefined, rng: new Rng(101) }], o);
      expectSame([y!], [single[1]!]);
      disposeParams(m.params);
    });
  }

  test("a GRPO group: one prompt, six seeds at temperature 1, each the sample generate draws with that seed", async () => {
    const m = loadModel(join(FIX, "hf-llama"));
    const o = { temperature: 1, topK: 0, topP: 1, maxNewTokens: 8 };
    const items = [11, 12, 13, 14, 15, 16].map((seed) => ({ prompt: [1, 5, 17, 33, 8], stop: [2], seed }));
    const single = [];
    for (const it of items) single.push(await alone(m, it, o));
    expectSame(await generateBatch(m.config, m.params, items, o), single);
    // six seeds, six different samples: the rows did not share a generator
    expect(new Set(single.map((g) => g.ids.join())).size).toBe(6);
    disposeParams(m.params);
  });

  test("sequences that all stop at different steps: each row leaves, the batch ends with the last", async () => {
    const m = mla(0);
    const prompts = [[4, 8], [15, 16, 23, 42], [7], [9, 9, 9]];
    const free = await generateBatch(
      m.config,
      m.params,
      prompts.map((prompt) => ({ prompt, stop: [] })),
      { ...greedy, maxNewTokens: 10 },
    );
    // sequence i stops at step k_i + 1: near 4, 1, 7 and 3, all different, at a token it samples there
    // for the first time (greedy decoding may repeat one)
    const used = new Set<number>();
    const want = free.map((g, i) => {
      let k = firstNew(g.ids, [3, 0, 6, 2][i]!);
      while (used.has(k)) k = firstNew(g.ids, k + 1);
      used.add(k);
      return k;
    });
    expect(Math.max(...want)).toBeLessThan(10);
    const stopIds = want.map((k, i) => free[i]!.ids[k]!);
    let steps = 0;
    const items = prompts.map((prompt, i) => ({ prompt, stop: [stopIds[i]!] }));
    const batch = await generateBatch(m.config, m.params, items, {
      ...greedy,
      maxNewTokens: 10,
      onStep: () => void steps++,
    });
    expect(batch.map((g) => g.finish)).toEqual(["stop", "stop", "stop", "stop"]);
    expect(batch.map((g) => g.ids)).toEqual(free.map((g, i) => g.ids.slice(0, want[i]! + 1)));
    // one prefill and one step per token after the first, until the longest is done
    expect(steps).toBe(Math.max(...want) + 1);
    // each row's time runs to its own last step
    const order = [...want.keys()].sort((a, b) => want[a]! - want[b]!);
    for (let k = 1; k < order.length; k++)
      expect(batch[order[k]!]!.seconds).toBeGreaterThanOrEqual(batch[order[k - 1]!]!.seconds);
    disposeParams(m.params);
  });

  test("what onStep throws ends the batch, and the next batch runs as before", async () => {
    const m = loadModel(join(FIX, "hf-llama"));
    const items = PROMPTS.map((prompt) => ({ prompt, stop: [] }));
    let n = 0;
    const stop = new Error("stop requested");
    await expect(
      generateBatch(m.config, m.params, items, {
        ...greedy,
        maxNewTokens: 12,
        onStep: () => {
          if (++n === 3) throw stop;
        },
      }),
    ).rejects.toBe(stop);
    expect(n).toBe(3);
    const again = await generateBatch(m.config, m.params, items.slice(0, 2), { ...greedy, maxNewTokens: 4 });
    const single = [];
    for (const it of items.slice(0, 2)) single.push(await alone(m, it, { ...greedy, maxNewTokens: 4 }));
    expectSame(again, single);
    disposeParams(m.params);
  });

  test("refused: an empty prompt, and a prompt with max new tokens past max_position_embeddings", async () => {
    const m = loadModel(join(FIX, "hf-llama"));
    const o = { ...greedy, maxNewTokens: 200 };
    await expect(
      generateBatch(
        m.config,
        m.params,
        [
          { prompt: [1], stop: [] },
          { prompt: [], stop: [] },
        ],
        o,
      ),
    ).rejects.toThrow(/^generate: the prompt is empty/);
    await expect(generateBatch(m.config, m.params, [{ prompt: Array(60).fill(1), stop: [] }], o)).rejects.toThrow(
      /^generate: prompt \(60\) \+ max new tokens \(200\) exceed max_position_embeddings 256$/,
    );
    expect(await generateBatch(m.config, m.params, [], o)).toEqual([]);
    disposeParams(m.params);
  });
});
