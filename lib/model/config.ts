// The model config: Hugging Face field names (config.json of a checkpoint is a transformers config),
// one valibot schema for the keys every family shares, and the checks that make a config buildable
// (heads dividing, an even head dim). `model_type` picks the family (families.ts): Llama (also
// SmolLM's layout), Qwen2 (q/k/v biases), Qwen3 (per-head q/k norms), Mistral (sliding windows) and
// DeepSeek-V2 (latent attention, interleaved RoPE). Our own checkpoints are model_type "llama", with
// attn_type "mla" for latent attention in rotate-half RoPE.
import * as v from "valibot";
import { InputError } from "../base/errors.ts";
import { closest } from "../base/suggest.ts";
import type { RopeFreqs } from "../ops/rope.ts";
import { FAMILIES, familyOf, type Family } from "./families.ts";
import { parseRopeScaling, scaledFreqs, yarnMscale, type RopeScaling } from "./rope_scaling.ts";
import { OUR_MOE_KEYS, parseDeepseekMoe, parseOurMoe, parseQwenMoe, type MoeConfig } from "./moe.ts";

const posInt = (what: string) =>
  v.pipe(
    v.number(`${what} must be a number`),
    v.integer(`${what} must be a whole number`),
    v.minValue(1, `${what} must be at least 1`),
  );

/** A key's rule and its one-line description (docs/config.md is generated from them). */
const about = <S extends v.GenericSchema>(schema: S, text: string) => v.pipe(schema, v.description(text));

export const ModelConfigSchema = v.object({
  vocab_size: about(posInt("vocab_size"), "token ids the embedding holds (a new model: the tokenizer's size)"),
  hidden_size: about(posInt("hidden_size"), "width of the residual stream"),
  num_hidden_layers: about(posInt("num_hidden_layers"), "transformer blocks"),
  num_attention_heads: about(posInt("num_attention_heads"), "query heads"),
  num_key_value_heads: v.optional(
    about(posInt("num_key_value_heads"), "key/value heads (grouped-query attention; unset: one per query head)"),
  ),
  intermediate_size: about(posInt("intermediate_size"), "SwiGLU hidden width"),
  head_dim: v.optional(
    about(v.nullable(posInt("head_dim")), "width of one head (unset: hidden_size / num_attention_heads)"),
  ),
  max_position_embeddings: v.optional(
    about(posInt("max_position_embeddings"), "longest sequence the model is built for"),
    2048,
  ),
  rope_theta: v.optional(about(v.pipe(v.number(), v.minValue(1)), "RoPE base frequency"), 10000),
  rms_norm_eps: v.optional(about(v.pipe(v.number(), v.gtValue(0)), "RMSNorm epsilon"), 1e-5),
  tie_word_embeddings: v.optional(about(v.boolean(), "the output head shares the embedding matrix"), false),
  attn_type: v.optional(
    about(
      v.picklist(["gqa", "mla"], 'attn_type must be "gqa" or "mla"'),
      "gqa: grouped-query attention; mla: multi-head latent attention",
    ),
    "gqa",
  ),
  initializer_range: v.optional(about(v.number(), "standard deviation of the initial weights"), 0.02),
  // multi-head latent attention (attn_type "mla"; DeepSeek-V2 field names)
  kv_lora_rank: v.optional(about(posInt("kv_lora_rank"), "mla: width of the shared key/value latent")),
  q_lora_rank: v.optional(
    about(
      v.nullable(v.pipe(v.number(), v.integer(), v.minValue(0))),
      "mla: width of the query latent (0: queries projected directly)",
    ),
    0,
  ),
  qk_nope_head_dim: v.optional(about(posInt("qk_nope_head_dim"), "mla: query/key channels without RoPE per head")),
  qk_rope_head_dim: v.optional(about(posInt("qk_rope_head_dim"), "mla: query/key channels with RoPE per head")),
  v_head_dim: v.optional(about(posInt("v_head_dim"), "mla: value channels per head")),
  // accepted so that Hugging Face Llama configs load; anything we cannot honour is refused below
  rope_scaling: v.optional(v.nullable(v.any())),
  attention_bias: v.optional(v.boolean(), false),
  mlp_bias: v.optional(v.boolean(), false),
  hidden_act: v.optional(v.string(), "silu"),
  bos_token_id: v.optional(v.nullable(v.any())),
  eos_token_id: v.optional(v.nullable(v.any())),
  pad_token_id: v.optional(v.nullable(v.any())),
});

export type ModelConfigInput = v.InferInput<typeof ModelConfigSchema>;

export interface ModelConfig {
  vocab_size: number;
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  intermediate_size: number;
  head_dim: number;
  max_position_embeddings: number;
  rope_theta: number;
  rms_norm_eps: number;
  tie_word_embeddings: boolean;
  attn_type: "gqa" | "mla";
  /** latent attention's sizes (attn_type "mla") */
  mla: {
    kv_lora_rank: number;
    q_lora_rank: number;
    qk_nope_head_dim: number;
    qk_rope_head_dim: number;
    v_head_dim: number;
  } | null;
  initializer_range: number;
  /** mixture-of-experts layers (moe.ts); null: every MLP dense */
  moe: MoeConfig | null;
  eos_token_id: number[];
  bos_token_id: number | null;
  pad_token_id: number | null;
  /** config.json's model_type: the family whose layout the weights and config.json have */
  model_type: Family;
  /** q, k and v projections carry biases (Qwen2) */
  qkv_bias: boolean;
  /** RMSNorm over each head's query and key before RoPE (Qwen3) */
  qk_norm: boolean;
  /** per layer: how many positions back a query sees (0: all of its document) */
  windows: number[];
  rope_scaling: RopeScaling | null;
  /** RoPE's frequencies, its cos/sin factor and pairing, for the rotated dims */
  rope: RopeFreqs;
  /** softmax scale of attention scores */
  attn_scale: number;
  /** config.json as read (a foreign one is written back unchanged when the model is saved) */
  source: Record<string, unknown>;
  /** written by transformers or another tool, not by bunlm */
  foreign: boolean;
  /** the dtype the weights were loaded from (checkpoint.ts sets it; saving keeps it by default) */
  stored_dtype?: "F32" | "BF16" | "F16";
}

const ids = (x: unknown): number[] =>
  x === null || x === undefined ? [] : Array.isArray(x) ? x.map(Number) : [Number(x)];

/** Validate a parsed config.json (or a --model file); `where` names it in errors. */
export function parseModelConfig(raw: unknown, where = "model config"): ModelConfig {
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) throw new InputError(`${where}: expected a JSON object`);
  const o = raw as Record<string, unknown>;
  const fam = familyOf(o.model_type, where);
  const f = FAMILIES[fam];
  const known = [...Object.keys(ModelConfigSchema.entries), ...f.keys, "rope_parameters"];
  for (const k of Object.keys(o)) {
    if (known.includes(k) || f.ignored.has(k)) continue;
    const near = closest(k, known);
    throw new InputError(
      `${where}: unknown key "${k}"${near ? ` (did you mean "${near}"?)` : ""}; bunlm's ${fam} model does not implement it, so it is refused rather than ignored`,
    );
  }
  if (o.attention_dropout !== undefined && o.attention_dropout !== 0)
    throw new InputError(
      `${where}: attention_dropout ${JSON.stringify(o.attention_dropout)}: bunlm trains without dropout (give 0)`,
    );
  const r = v.safeParse(
    ModelConfigSchema,
    f.normalize ? f.normalize(ropeParameters(o, where)) : ropeParameters(o, where),
  );
  if (!r.success) {
    const i = r.issues[0]!;
    const path = i.path?.map((p: any) => p.key).join(".");
    throw new InputError(`${where}: ${path ? `${path}: ` : ""}${i.message}`);
  }
  const c = r.output;
  const H = c.num_attention_heads;
  const bad = (m: string) => new InputError(`${where}: ${m}`);
  const traits = f.traits(o, c.num_hidden_layers, bad);
  const moe =
    fam === "llama"
      ? parseOurMoe(o, c.num_hidden_layers, bad)
      : fam === "deepseek_v2"
        ? parseDeepseekMoe(o, c.num_hidden_layers, bad)
        : fam === "qwen2_moe"
          ? parseQwenMoe(o, c.num_hidden_layers, bad)
          : null;
  let mla: ModelConfig["mla"] = null;
  if (c.attn_type === "mla") {
    const need = ["kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim"] as const;
    for (const k of need) if (c[k] === undefined) throw bad(`attn_type "mla" needs ${k}`);
    mla = {
      kv_lora_rank: c.kv_lora_rank!,
      q_lora_rank: c.q_lora_rank ?? 0,
      qk_nope_head_dim: c.qk_nope_head_dim!,
      qk_rope_head_dim: c.qk_rope_head_dim!,
      v_head_dim: c.v_head_dim!,
    };
    if (mla.qk_rope_head_dim % 2)
      throw bad(`qk_rope_head_dim ${mla.qk_rope_head_dim} is odd; RoPE rotates pairs, so it must be even`);
  }
  // latent attention: every head has its own key and value (from the latent), queries/keys are dn + dr wide
  const KV = mla ? H : (c.num_key_value_heads ?? H);
  const D = mla ? mla.qk_nope_head_dim + mla.qk_rope_head_dim : (c.head_dim ?? c.hidden_size / H);
  if (!Number.isInteger(D))
    throw bad(`hidden_size ${c.hidden_size} is not divisible by num_attention_heads ${H} (or give head_dim)`);
  if (D % 2) throw bad(`head dim ${D} is odd; RoPE rotates pairs, so it must be even`);
  if (H % KV) throw bad(`num_attention_heads ${H} is not a multiple of num_key_value_heads ${KV}`);
  if (c.attention_bias && !traits.attentionBiasOk)
    throw bad(`attention_bias true is not supported for ${fam} (only Qwen2's q/k/v biases are)`);
  if (c.mlp_bias) throw bad("mlp_bias true is not supported (SwiGLU projections without biases only)");
  if (c.hidden_act !== "silu") throw bad(`hidden_act ${c.hidden_act}: only silu (SwiGLU) is supported`);
  if (o.partial_rotary_factor !== undefined && o.partial_rotary_factor !== 1)
    throw bad(`partial_rotary_factor ${JSON.stringify(o.partial_rotary_factor)}: RoPE over whole heads only (give 1)`);
  const rope_scaling = parseRopeScaling(c.rope_scaling, where);
  const R = mla ? mla.qk_rope_head_dim : D;
  const rope = scaledFreqs(R, c.rope_theta, rope_scaling, c.max_position_embeddings, traits.interleavedRope);
  let attn_scale = 1 / Math.sqrt(D);
  // DeepSeek's YaRN also sharpens the softmax by mscale(factor, mscale_all_dim)² (its attention code)
  if (traits.interleavedRope && rope_scaling?.type === "yarn" && rope_scaling.mscaleAllDim)
    attn_scale *= yarnMscale(rope_scaling.factor, rope_scaling.mscaleAllDim) ** 2;
  return {
    vocab_size: c.vocab_size,
    hidden_size: c.hidden_size,
    num_hidden_layers: c.num_hidden_layers,
    num_attention_heads: H,
    num_key_value_heads: KV,
    intermediate_size: c.intermediate_size,
    head_dim: D,
    max_position_embeddings: c.max_position_embeddings,
    rope_theta: c.rope_theta,
    rms_norm_eps: c.rms_norm_eps,
    tie_word_embeddings: c.tie_word_embeddings,
    attn_type: c.attn_type,
    mla,
    initializer_range: c.initializer_range,
    moe,
    eos_token_id: ids(c.eos_token_id),
    bos_token_id: (c.bos_token_id as number | null) ?? null,
    pad_token_id: (c.pad_token_id as number | null) ?? null,
    model_type: fam,
    qkv_bias: traits.qkvBias,
    qk_norm: traits.qkNorm,
    windows: traits.windows,
    rope_scaling,
    rope,
    attn_scale,
    source: { ...o },
    foreign: f.foreign(o),
  };
}

/**
 * transformers 5 writes rope_theta and rope_scaling as one rope_parameters object: read it as the two
 * keys older versions write.
 */
function ropeParameters(o: Record<string, unknown>, where: string): Record<string, unknown> {
  const rp = o.rope_parameters;
  if (rp === undefined || rp === null) return o;
  if (typeof rp !== "object" || Array.isArray(rp)) throw new InputError(`${where}: rope_parameters must be an object`);
  const { rope_theta, ...scaling } = rp as Record<string, unknown>;
  const { rope_parameters: _, ...rest } = o;
  return {
    ...rest,
    ...(rope_theta !== undefined ? { rope_theta } : {}),
    rope_scaling: scaling.rope_type === "default" || !Object.keys(scaling).length ? null : scaling,
  };
}

/**
 * config.json for a model: a foreign config.json as it was read (its dtype set to the one saved), or
 * ours as Hugging Face transformers writes a LlamaConfig.
 */
export function hfConfigJson(c: ModelConfig, dtype = "float32"): Record<string, unknown> {
  if (c.foreign) {
    // transformers 5 names it dtype; older versions torch_dtype
    const key = "dtype" in c.source && !("torch_dtype" in c.source) ? "dtype" : "torch_dtype";
    return { ...c.source, [key]: dtype };
  }
  return {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    attn_type: c.attn_type,
    ...(c.mla ?? {}),
    vocab_size: c.vocab_size,
    hidden_size: c.hidden_size,
    intermediate_size: c.intermediate_size,
    num_hidden_layers: c.num_hidden_layers,
    num_attention_heads: c.num_attention_heads,
    num_key_value_heads: c.num_key_value_heads,
    head_dim: c.head_dim,
    ...Object.fromEntries(OUR_MOE_KEYS.filter((k) => c.moe && k in c.source).map((k) => [k, c.source[k]])),
    max_position_embeddings: c.max_position_embeddings,
    rope_theta: c.rope_theta,
    rope_scaling: c.source.rope_scaling ?? null,
    rms_norm_eps: c.rms_norm_eps,
    tie_word_embeddings: c.tie_word_embeddings,
    hidden_act: "silu",
    attention_bias: false,
    attention_dropout: 0.0,
    mlp_bias: false,
    initializer_range: c.initializer_range,
    bos_token_id: c.bos_token_id,
    eos_token_id: c.eos_token_id.length === 1 ? c.eos_token_id[0] : c.eos_token_id.length ? c.eos_token_id : null,
    pad_token_id: c.pad_token_id,
    torch_dtype: dtype,
    use_cache: true,
  };
}
