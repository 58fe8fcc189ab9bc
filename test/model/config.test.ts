import { describe, expect, test } from "bun:test";
import { parseModelConfig, hfConfigJson } from "../../lib/model/config.ts";
import { countParams, paramShapes } from "../../lib/model/params.ts";
import { invFreq } from "../../lib/ops/rope.ts";

/** The config without the copy of what was read (which differs between the two sides of a round trip). */
const derived = (c: ReturnType<typeof parseModelConfig>) => ({ ...c, source: null });

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
    expect(derived(parseModelConfig(hfConfigJson(c)))).toEqual(derived(c));
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
    [
      "an unsupported rope scaling",
      { rope_scaling: { rope_type: "dynamic", factor: 2 } },
      /rope_scaling.rope_type "dynamic" is not supported \(linear, llama3 and yarn are/,
    ],
    [
      "a rope scaling setting it would drop",
      { rope_scaling: { rope_type: "linear", factor: 2, low_freq_factor: 1 } },
      /rope_scaling.low_freq_factor is not a linear setting/,
    ],
    ["Llama attention biases", { attention_bias: true }, /attention_bias true is not supported for llama/],
    [
      "an unknown family",
      { model_type: "gpt2" },
      /model_type "gpt2" is not supported \(llama, qwen2, qwen3, mistral, deepseek_v2, qwen2_moe\)/,
    ],
    [
      "a key of another family",
      { model_type: "mistral", max_window_layers: 3 },
      /unknown key "max_window_layers".*bunlm's mistral model does not implement it/,
    ],
    [
      "DeepSeek-V2's group-limited routing",
      {
        model_type: "deepseek_v2",
        kv_lora_rank: 8,
        qk_nope_head_dim: 4,
        qk_rope_head_dim: 4,
        v_head_dim: 4,
        n_routed_experts: 8,
        first_k_dense_replace: 1,
        topk_method: "group_limited_greedy",
      },
      /topk_method "group_limited_greedy": only "greedy"/,
    ],
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

  test("families: Qwen2 biases, Qwen3 head norms, sliding windows per layer, DeepSeek's latent attention", () => {
    const q2 = parseModelConfig({
      ...base,
      model_type: "qwen2",
      use_sliding_window: true,
      sliding_window: 5,
      max_window_layers: 1,
    });
    expect([q2.qkv_bias, q2.qk_norm, q2.windows]).toEqual([true, false, [0, 5]]);
    expect(
      paramShapes(q2)
        .filter(([n]) => n.endsWith(".bias"))
        .map(([n, s]) => `${n}:${s}`),
    ).toEqual([
      "model.layers.0.self_attn.q_proj.bias:32",
      "model.layers.0.self_attn.k_proj.bias:16",
      "model.layers.0.self_attn.v_proj.bias:16",
      "model.layers.1.self_attn.q_proj.bias:32",
      "model.layers.1.self_attn.k_proj.bias:16",
      "model.layers.1.self_attn.v_proj.bias:16",
    ]);
    // windows off unless use_sliding_window, whatever sliding_window says (Qwen2.5's released configs)
    expect(
      parseModelConfig({ ...base, model_type: "qwen2", use_sliding_window: false, sliding_window: 4096 }).windows,
    ).toEqual([0, 0]);
    const q3 = parseModelConfig({
      ...base,
      model_type: "qwen3",
      head_dim: 12,
      layer_types: ["sliding_attention", "full_attention"],
      sliding_window: 7,
    });
    expect([q3.qk_norm, q3.head_dim, q3.windows, q3.attn_scale]).toEqual([true, 12, [7, 0], 1 / Math.sqrt(12)]);
    expect(paramShapes(q3).filter(([n]) => n.includes("_norm.") && n.includes("layers.0."))).toEqual([
      ["model.layers.0.self_attn.q_norm.weight", [12]],
      ["model.layers.0.self_attn.k_norm.weight", [12]],
    ]);
    expect(parseModelConfig({ ...base, model_type: "mistral", sliding_window: 4096 }).windows).toEqual([4096, 4096]);
    expect(parseModelConfig({ ...base, model_type: "mistral", sliding_window: null }).windows).toEqual([0, 0]);
    const ds = parseModelConfig({
      ...base,
      model_type: "deepseek_v2",
      kv_lora_rank: 8,
      q_lora_rank: null,
      qk_nope_head_dim: 6,
      qk_rope_head_dim: 4,
      v_head_dim: 5,
      n_routed_experts: null,
    });
    expect([ds.attn_type, ds.num_key_value_heads, ds.rope.interleaved, ds.mla!.q_lora_rank]).toEqual([
      "mla",
      4,
      true,
      0,
    ]);
    // a foreign config.json is written back as read, dtype updated
    const raw = {
      ...base,
      model_type: "mistral",
      sliding_window: 9,
      torch_dtype: "bfloat16",
      architectures: ["MistralForCausalLM"],
    };
    expect(hfConfigJson(parseModelConfig(raw), "float32")).toEqual({ ...raw, torch_dtype: "float32" });
  });

  test("rope_scaling: linear, llama3 and yarn frequencies by hand; transformers 5's rope_parameters", () => {
    const plain = invFreq(8, 10000); // head dim 8: frequencies 1, 0.1, 0.01, 0.001
    const lin = parseModelConfig({ ...base, rope_scaling: { type: "linear", factor: 4 } });
    expect(Array.from(lin.rope.invFreq)).toEqual(Array.from(plain, (f) => Math.fround(f / 4)));
    // llama3 with an original context of 64: wavelengths 2π/f = 6.3, 63, 628, 6283 against 64/4 = 16
    // (kept below) and 64/1 = 64 (divided by 8 above); 63 lies between: smoothed
    const l3 = parseModelConfig({
      ...base,
      rope_scaling: {
        rope_type: "llama3",
        factor: 8,
        low_freq_factor: 1,
        high_freq_factor: 4,
        original_max_position_embeddings: 64,
      },
    });
    const s = (64 / ((2 * Math.PI) / plain[1]!) - 1) / (4 - 1);
    const want = [plain[0]!, ((1 - s) * plain[1]!) / 8 + s * plain[1]!, plain[2]! / 8, plain[3]! / 8];
    expect(Array.from(l3.rope.invFreq)).toEqual(want.map(Math.fround));
    expect(l3.rope.scale).toBe(1);
    // yarn: attention factor 0.1·ln(4) + 1; DeepSeek's mscale pair gives a ratio and a sharper softmax
    const y = parseModelConfig({
      ...base,
      rope_scaling: { rope_type: "yarn", factor: 4, original_max_position_embeddings: 64 },
    });
    expect(y.rope.scale).toBeCloseTo(0.1 * Math.log(4) + 1, 12);
    expect(y.rope.invFreq[0]).toBe(plain[0]); // the fastest dim turns > beta_fast times: kept
    expect(y.rope.invFreq[3]).toBe(Math.fround(plain[3]! / 4)); // the slowest < beta_slow times: interpolated
    const rp = parseModelConfig({ ...base, rope_parameters: { rope_type: "linear", factor: 4, rope_theta: 10000 } });
    expect(Array.from(rp.rope.invFreq)).toEqual(Array.from(lin.rope.invFreq));
    expect(parseModelConfig({ ...base, rope_parameters: { rope_type: "default", rope_theta: 500 } }).rope_theta).toBe(
      500,
    );
  });
});
