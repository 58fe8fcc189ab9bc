import { beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { initGpu } from "../../lib/gpu/index.ts";
import { loadModel } from "../../lib/model/checkpoint.ts";
import { DecodeState, generate, NonFiniteLogitsError } from "../../lib/model/generate.ts";
import { disposeParams, fromNamed, initParams, namedParams } from "../../lib/model/params.ts";
import { sample, logprobOf, logitsFault } from "../../lib/model/sample.ts";
import { forward, plainPositions } from "../../lib/model/transformer.ts";
import { parseModelConfig } from "../../lib/model/config.ts";
import { Tensor } from "../../lib/tensor/tensor.ts";
import { keep } from "../../lib/tensor/scope.ts";
import { Rng } from "../../lib/base/rng.ts";

const FIX = join(import.meta.dir, "..", "reference", "fixtures");

beforeAll(async () => {
  await initGpu();
});

describe("generate", () => {
  test("a Hugging Face Llama checkpoint (bf16, made by PyTorch) gives PyTorch's greedy tokens", async () => {
    const dir = join(FIX, "hf-llama");
    const want = JSON.parse(readFileSync(join(dir, "expected_greedy.json"), "utf8"));
    const { config, params } = loadModel(dir);
    const g = await generate(config, params, want.prompt, {
      maxNewTokens: want.ids.length,
      temperature: 0,
      topK: 0,
      topP: 1,
      seed: 0,
      stop: [],
    });
    expect(g.ids).toEqual(want.ids);
    disposeParams(params);
  });

  test("the KV cache gives exactly the tokens of recomputing the whole sequence", async () => {
    const { config, params } = loadModel(join(FIX, "hf-llama"));
    const opts = { maxNewTokens: 30, temperature: 0.9, topK: 20, topP: 0.95, seed: 3, stop: [] };
    const a = await generate(config, params, [1, 9, 4], { ...opts, useCache: true });
    const b = await generate(config, params, [1, 9, 4], { ...opts, useCache: false });
    expect(a.ids).toEqual(b.ids);
    expect(a.ids).toHaveLength(30);
    for (let i = 0; i < a.logprobs.length; i++) expect(a.logprobs[i]!).toBeCloseTo(b.logprobs[i]!, 4);
    disposeParams(params);
  });

  test("stops at a stop token and says so", async () => {
    const { config, params } = loadModel(join(FIX, "hf-llama"));
    const free = await generate(config, params, [1, 5], {
      maxNewTokens: 8,
      temperature: 0,
      topK: 0,
      topP: 1,
      seed: 0,
      stop: [],
    });
    const stopAt = free.ids[3]!;
    const g = await generate(config, params, [1, 5], {
      maxNewTokens: 8,
      temperature: 0,
      topK: 0,
      topP: 1,
      seed: 0,
      stop: [stopAt],
    });
    expect(g.finish).toBe("stop");
    expect(g.ids).toEqual(free.ids.slice(0, free.ids.indexOf(stopAt) + 1));
    disposeParams(params);
  });
});

describe("sampling", () => {
  const z = Float32Array.from([1, 3, 2, 3, -1]);
  test("temperature 0 is the first maximum", () => {
    expect(sample(z, { temperature: 0, topK: 0, topP: 1 }, new Rng(1))).toBe(1);
  });
  test("top-k 2 only ever draws the two best; top-p keeps the smallest set reaching p", () => {
    const rng = new Rng(5);
    const seen = new Set<number>();
    for (let i = 0; i < 300; i++) seen.add(sample(z, { temperature: 1, topK: 2, topP: 1 }, rng));
    expect([...seen].sort()).toEqual([1, 3]);
    // p(1) = p(3) ≈ 0.41, p(2) ≈ 0.15: top-p 0.5 keeps {1, 3}
    const seenP = new Set<number>();
    for (let i = 0; i < 300; i++) seenP.add(sample(z, { temperature: 1, topK: 0, topP: 0.5 }, rng));
    expect([...seenP].sort()).toEqual([1, 3]);
  });
  test("frequencies follow the softmax at the temperature", () => {
    const rng = new Rng(9);
    const counts = [0, 0, 0, 0, 0];
    const n = 20000;
    for (let i = 0; i < n; i++) counts[sample(z, { temperature: 2, topK: 0, topP: 1 }, rng)]!++;
    const e = Array.from(z, (x) => Math.exp(x / 2));
    const s = e.reduce((a, b) => a + b, 0);
    // binomial standard deviation at n = 20000 is under 0.0036; 0.015 is 4 of them
    counts.forEach((c, i) => expect(Math.abs(c / n - e[i]! / s)).toBeLessThan(0.015));
  });
});

describe("Hugging Face layouts", () => {
  test("a sharded checkpoint (model.safetensors.index.json) loads and generates the same tokens", async () => {
    const { mkdtempSync, copyFileSync, writeFileSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const { readHeader, readTensor, writeSafetensors } = await import("../../lib/io/safetensors.ts");
    const src = join(FIX, "hf-llama");
    const dir = mkdtempSync(join(tmpdir(), "bunlm-sharded-"));
    copyFileSync(join(src, "config.json"), join(dir, "config.json"));
    const h = readHeader(join(src, "model.safetensors"));
    const names = h.tensors.map((t) => t.name);
    const half = Math.ceil(names.length / 2);
    const weight_map: Record<string, string> = {};
    [names.slice(0, half), names.slice(half)].forEach((part, i) => {
      const file = `model-0000${i + 1}-of-00002.safetensors`;
      writeSafetensors(join(dir, file), Object.fromEntries(part.map((n) => [n, readTensor(h, n)])));
      for (const n of part) weight_map[n] = file;
    });
    writeFileSync(join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: {}, weight_map }));
    const want = JSON.parse(readFileSync(join(src, "expected_greedy.json"), "utf8"));
    const { config, params } = loadModel(dir);
    const g = await generate(config, params, want.prompt, {
      maxNewTokens: 10,
      temperature: 0,
      topK: 0,
      topP: 1,
      seed: 0,
      stop: [],
    });
    expect(g.ids).toEqual(want.ids.slice(0, 10));
    disposeParams(params);
  });
});

describe("latent attention's compressed cache", () => {
  for (const qLora of [0, 6])
    test(`greedy tokens with the latent cache equal generation without a cache${qLora ? " (low-rank queries)" : ""}`, async () => {
      const { parseModelConfig } = await import("../../lib/model/config.ts");
      const { initParams } = await import("../../lib/model/params.ts");
      const { cacheBytesPerToken } = await import("../../lib/model/latent_cache.ts");
      const c = parseModelConfig({
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
      const params = initParams({ ...c, initializer_range: 0.4 }, 5 + qLora);
      const opts = { maxNewTokens: 24, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [] };
      const cached = await generate(c, params, [3, 14, 15, 92, 65], { ...opts, useCache: true });
      const plain = await generate(c, params, [3, 14, 15, 92, 65], { ...opts, useCache: false });
      expect(cached.ids).toEqual(plain.ids);
      for (let i = 0; i < plain.logprobs.length; i++) expect(cached.logprobs[i]!).toBeCloseTo(plain.logprobs[i]!, 4);
      // 2 layers × (12 + 4) floats against 2 layers × 4 heads × (8 + 4 + 6)
      expect(cacheBytesPerToken(c)).toEqual({ latent: 2 * 16 * 4, expanded: 2 * 4 * 18 * 4 });
      disposeParams(params);
    });
});

describe("a vocabulary padded beyond the tokenizer (vocabLimit)", () => {
  // 100 real tokens padded to 128; the largest logits sit in the padding, one real token is -Infinity
  const LIMIT = 100;
  const rng0 = new Rng(2);
  const z = Float32Array.from({ length: 128 }, (_, i) => (i >= LIMIT ? 8 + (i % 5) : 3 * (rng0.next() - 0.5)));
  z[7] = -Infinity;
  const realArgmax = (() => {
    let b = 0;
    for (let i = 1; i < LIMIT; i++) if (z[i]! > z[b]!) b = i;
    return b;
  })();

  test("no draw at any temperature, top-k or top-p returns an id at or beyond the limit", () => {
    const rng = new Rng(3);
    for (const temperature of [0, 1e-30, 0.01, 0.5, 1, 2, 100, 1e30])
      for (const topK of [0, 1, 5, 99, 100, 127, 128, 500])
        for (const topP of [1e-6, 0.3, 0.9, 1]) {
          for (let n = 0; n < 20; n++) {
            const id = sample(z, { temperature, topK, topP, vocabLimit: LIMIT }, rng);
            if (!(Number.isInteger(id) && id >= 0 && id < LIMIT && id !== 7))
              throw new Error(`drew ${id} at temperature ${temperature}, top-k ${topK}, top-p ${topP}`);
          }
        }
  });

  test("greedy takes the largest logit below the limit, though the padding holds a larger one", () => {
    expect(sample(z, { temperature: 0, topK: 0, topP: 1 }, new Rng(1))).toBeGreaterThanOrEqual(LIMIT);
    expect(sample(z, { temperature: 0, topK: 0, topP: 1, vocabLimit: LIMIT }, new Rng(1))).toBe(realArgmax);
    // a vanishing temperature is greedy too, not NaN from z / T overflowing
    expect(sample(z, { temperature: 1e-30, topK: 0, topP: 1, vocabLimit: LIMIT }, new Rng(1))).toBe(realArgmax);
  });

  test("a limit at or past the row's length changes nothing", () => {
    for (const vocabLimit of [undefined, 128, 1000]) {
      const a = new Rng(4),
        b = new Rng(4);
      for (let n = 0; n < 50; n++)
        expect(sample(z, { temperature: 1, topK: 0, topP: 1, vocabLimit }, a)).toBe(
          sample(z, { temperature: 1, topK: 0, topP: 1 }, b),
        );
    }
  });

  test("a limit that leaves nothing to draw is a programming error, not id 0", () => {
    for (const vocabLimit of [0, -1, 2.5])
      expect(() => sample(z, { temperature: 0, topK: 0, topP: 1, vocabLimit }, new Rng(1))).toThrow(
        /vocabLimit must be a positive integer/,
      );
  });

  test("below the limit the draws follow the softmax of the real tokens alone", () => {
    const w = Float32Array.from([0, 1, 2, 50, 60]);
    const rng = new Rng(8);
    const counts = [0, 0, 0];
    const n = 20000;
    for (let i = 0; i < n; i++) counts[sample(w, { temperature: 1, topK: 0, topP: 1, vocabLimit: 3 }, rng)]!++;
    const e = [1, Math.E, Math.E ** 2],
      s = e[0]! + e[1]! + e[2]!;
    // binomial standard deviation at n = 20000 is under 0.0036; 0.015 is 4 of them
    counts.forEach((c, i) => expect(Math.abs(c / n - e[i]! / s)).toBeLessThan(0.015));
  });

  test("logitsFault: NaN or +Infinity anywhere, or nothing finite below the limit", () => {
    expect(logitsFault(z, { vocabLimit: LIMIT })).toBeNull();
    expect(logitsFault(Float32Array.from([0, NaN, 1]))).toBe("NaN");
    expect(logitsFault(Float32Array.from([0, 1, NaN]), { vocabLimit: 2 })).toBe("NaN");
    expect(logitsFault(Float32Array.from([0, Infinity, 1]))).toBe("+Infinity");
    expect(logitsFault(Float32Array.from([0, 1, Infinity]), { vocabLimit: 2 })).toBe("+Infinity");
    expect(logitsFault(Float32Array.from([-Infinity, -Infinity]))).toBe("all -Infinity");
    expect(logitsFault(Float32Array.from([-Infinity, -Infinity, 3]), { vocabLimit: 2 })).toBe("all -Infinity");
    expect(logitsFault(Float32Array.from([-Infinity, 0, -Infinity]))).toBeNull();
  });

  test("generate: ids stay below the limit, and the log-probs are the full softmax's (what the trainer scores)", async () => {
    const { config, params } = loadModel(join(FIX, "hf-llama"));
    const limit = 40;
    const prompt = [1, 9, 4];
    const greedy = (vocabLimit?: number) =>
      generate(config, params, prompt, {
        maxNewTokens: 10,
        temperature: 0,
        topK: 0,
        topP: 1,
        seed: 0,
        stop: [],
        vocabLimit,
      });
    expect((await greedy()).ids.some((id) => id >= limit)).toBe(true);
    const g = await greedy(limit);
    expect(g.ids.every((id) => id < limit)).toBe(true);
    for (const o of [
      { temperature: 1, topK: 0, topP: 1 },
      { temperature: 1.5, topK: 60, topP: 1 },
      { temperature: 0.8, topK: 0, topP: 0.9 },
    ]) {
      const s = await generate(config, params, prompt, {
        ...o,
        maxNewTokens: 10,
        seed: 5,
        stop: [],
        vocabLimit: limit,
      });
      expect(s.ids.every((id) => id < limit)).toBe(true);
    }
    // the logits of every step from one pass over the whole sequence, scored as GRPO's policy scores them
    const seq = [...prompt, ...g.ids];
    const T = seq.length,
      V = config.vocab_size;
    const all = await forward(
      config,
      params,
      Tensor.from(seq, [T], "i32"),
      Tensor.from(plainPositions(1, T), [T], "i32"),
      1,
      T,
    ).toArray();
    for (let k = 0; k < g.ids.length; k++) {
      const row = all.subarray((prompt.length - 1 + k) * V, (prompt.length + k) * V);
      expect(g.logprobs[k]!).toBeCloseTo(logprobOf(row, g.ids[k]!), 4);
      // not renormalized over the first `limit` ids, which would claim more than the model assigns
      expect(g.logprobs[k]!).toBeLessThan(logprobOf(row.subarray(0, limit), g.ids[k]!));
    }
    disposeParams(params);
  });
});

describe("logits that are not finite", () => {
  test("generate stops with NonFiniteLogitsError at the first such step, not with ids", async () => {
    const c = parseModelConfig({
      vocab_size: 64,
      hidden_size: 32,
      num_hidden_layers: 1,
      num_attention_heads: 2,
      intermediate_size: 64,
      max_position_embeddings: 64,
    });
    const src = initParams(c, 3);
    const host = new Map<string, Float32Array>();
    for (const [name, t] of namedParams(src)) host.set(name, (await t.toArray()) as Float32Array);
    disposeParams(src);
    // finite weights that overflow f32 in the products
    const params = fromNamed(c, (name, shape) =>
      keep(
        Tensor.from(
          host.get(name)!.map((x) => x * 1e20),
          shape,
        ).param(),
      ),
    );
    for (const useCache of [true, false]) {
      const err = await generate(c, params, [1, 2, 3], {
        maxNewTokens: 4,
        temperature: 0.9,
        topK: 0,
        topP: 1,
        seed: 0,
        stop: [],
        useCache,
      }).catch((e) => e);
      expect(err).toBeInstanceOf(NonFiniteLogitsError);
      expect(err.token).toBe(1);
      expect(err.message).toMatch(/^the model's logits (are NaN|reach \+Infinity) at generated token 1$/);
    }
    disposeParams(params);
  });
});

describe("continuing a decode state (a chat's next turn)", () => {
  const mla = {
    vocab_size: 97,
    hidden_size: 48,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    intermediate_size: 96,
    attn_type: "mla",
    kv_lora_rank: 12,
    q_lora_rank: 0,
    qk_nope_head_dim: 8,
    qk_rope_head_dim: 4,
    v_head_dim: 6,
    max_position_embeddings: 128,
  };
  const models: [
    string,
    () => { config: ReturnType<typeof parseModelConfig>; params: ReturnType<typeof initParams> },
  ][] = [
    ["grouped-query attention (the PyTorch-made checkpoint)", () => loadModel(join(FIX, "hf-llama"))],
    [
      "latent attention",
      () => {
        const config = parseModelConfig(mla);
        return { config, params: initParams({ ...config, initializer_range: 0.4 }, 9) };
      },
    ],
  ];
  for (const [name, make] of models)
    for (const flush of [true, false])
      test(`${name}${flush ? ", the answer's last token read at once" : ", the last token read with the next prompt"}: exactly the tokens and log-probs of generating from scratch`, async () => {
        const { config, params } = make();
        const opts = { temperature: 0.9, topK: 20, topP: 0.95, seed: 3, stop: [] };
        const first = [1, 9, 4],
          second = [7, 2, 30, 5, 11];
        // capacity 4: the cache grows (copying what it holds) during the first prompt and again later
        const state = await DecodeState.open(config, params, { capacity: 4 });
        const a = await state.generate(first, { ...opts, maxNewTokens: 6 });
        expect(state.length).toBe(first.length + 6);
        if (flush) {
          await state.flush();
          expect(state.ids).toEqual([...first, ...a.ids]);
        } else expect(state.ids).toEqual([...first, ...a.ids.slice(0, -1)]);
        const b = await state.generate(second, { ...opts, maxNewTokens: 12 });
        const whole = [...first, ...a.ids, ...second];
        const ref = await generate(config, params, whole, { ...opts, maxNewTokens: 12 });
        expect(b.ids).toEqual(ref.ids);
        for (let i = 0; i < ref.logprobs.length; i++) expect(b.logprobs[i]!).toBeCloseTo(ref.logprobs[i]!, 4);
        expect(state.length).toBe(whole.length + 12);
        // past max_position_embeddings it refuses, counting what was read before
        await expect(
          state.generate([1], { ...opts, maxNewTokens: config.max_position_embeddings - state.length }),
        ).rejects.toThrow(
          new RegExp(`^generate: ${state.length} tokens read before, prompt \\(1\\) \\+ max new tokens`),
        );
        state.dispose();
        disposeParams(params);
      });
});
