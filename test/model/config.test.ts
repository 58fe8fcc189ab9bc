import { describe, expect, test } from "bun:test";
import { parseModelConfig, hfConfigJson } from "../../lib/model/config.ts";
import { countParams, paramShapes } from "../../lib/model/params.ts";

const base = {
  vocab_size: 61,
  hidden_size: 32,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  intermediate_size: 56,
};

describe("model config", () => {
  test("defaults and derived head_dim; HF config.json round trip", () => {
    const c = parseModelConfig(base);
    expect(c).toMatchObject({
      head_dim: 8,
      rope_theta: 10000,
      rms_norm_eps: 1e-5,
      tie_word_embeddings: false,
      attn_type: "gqa",
    });
    expect(parseModelConfig(hfConfigJson(c))).toEqual(c);
    expect(hfConfigJson(c)).toMatchObject({
      architectures: ["LlamaForCausalLM"],
      model_type: "llama",
      hidden_act: "silu",
    });
  });

  const bad: [string, object, RegExp][] = [
    [
      "heads not dividing the hidden size",
      { num_attention_heads: 5 },
      /hidden_size 32 is not divisible by num_attention_heads 5/,
    ],
    [
      "kv heads not dividing the heads",
      { num_key_value_heads: 3 },
      /num_attention_heads 4 is not a multiple of num_key_value_heads 3/,
    ],
    ["an odd head dim", { hidden_size: 36, num_attention_heads: 4 }, /head dim 9 is odd/],
    ["a negative size", { vocab_size: -3 }, /vocab_size: vocab_size must be at least 1/],
    ["a fractional layer count", { num_hidden_layers: 1.5 }, /num_hidden_layers must be a whole number/],
    ["rope scaling", { rope_scaling: { type: "linear", factor: 2 } }, /rope_scaling is not supported/],
    ["biases", { attention_bias: true }, /biases .* not supported/],
    ["an unknown attention type", { attn_type: "sparse" }, /attn_type must be "gqa" or "mla"/],
  ];
  for (const [name, over, re] of bad)
    test(`rejects ${name}`, () => expect(() => parseModelConfig({ ...base, ...over }, "cfg.json")).toThrow(re));

  test("parameter count: embeddings, 2 layers, norm, untied head", () => {
    const c = parseModelConfig(base);
    const layer = 32 + 32 * 32 + 2 * (16 * 32) + 32 * 32 + 32 + 3 * 56 * 32;
    expect(countParams(c)).toBe(61 * 32 + 2 * layer + 32 + 61 * 32);
    expect(paramShapes(parseModelConfig({ ...base, tie_word_embeddings: true })).map(([n]) => n)).not.toContain(
      "lm_head.weight",
    );
  });
});
