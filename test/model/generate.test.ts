import { beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { initGpu } from "../../lib/gpu/index.ts";
import { loadModel } from "../../lib/model/checkpoint.ts";
import { generate } from "../../lib/model/generate.ts";
import { disposeParams } from "../../lib/model/params.ts";
import { sample } from "../../lib/model/sample.ts";
import { Rng } from "../../lib/data/rng.ts";

const FIX = join(import.meta.dir, "..", "reference", "fixtures");

beforeAll(async () => {
  await initGpu();
});

describe("generate", () => {
  test("a Hugging Face Llama checkpoint (bf16, made by PyTorch) gives PyTorch's greedy tokens", async () => {
    const dir = join(FIX, "hf-llama");
    const want = JSON.parse(readFileSync(join(dir, "expected_greedy.json"), "utf8"));
    const { config, params } = loadModel(dir);
    const g = await generate(config, params, want.prompt, { maxNewTokens: want.ids.length, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [] });
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
    const free = await generate(config, params, [1, 5], { maxNewTokens: 8, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [] });
    const stopAt = free.ids[3]!;
    const g = await generate(config, params, [1, 5], { maxNewTokens: 8, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [stopAt] });
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
    const g = await generate(config, params, want.prompt, { maxNewTokens: 10, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [] });
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
      const c = parseModelConfig({ vocab_size: 97, hidden_size: 48, num_hidden_layers: 2, num_attention_heads: 4, intermediate_size: 96, attn_type: "mla", kv_lora_rank: 12, q_lora_rank: qLora, qk_nope_head_dim: 8, qk_rope_head_dim: 4, v_head_dim: 6, max_position_embeddings: 128 });
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
