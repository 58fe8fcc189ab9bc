// The model families bunlm loads from a Hugging Face config.json, picked by its model_type, and what
// each changes in the shared decoder (read from each family's transformers modeling code):
//   llama        plain; SmolLM and SmolLM2 are this layout too
//   qwen2        biases on q, k and v (Qwen2, Qwen2.5); sliding windows on upper layers when enabled
//   qwen3        RMSNorm over each head's q and k before RoPE; no biases
//   mistral      a sliding window on every layer (Mistral 7B v0.1; null in later versions)
//   deepseek_v2  latent attention, RoPE on interleaved pairs, mixture-of-experts MLPs (moe.ts)
//   qwen2_moe    qwen2 with mixture-of-experts MLPs and a sigmoid-gated shared expert (Qwen1.5-MoE, Qwen2-57B-A14B)
// Each family names the keys it understands beyond the shared schema and the keys that change nothing
// we compute (bookkeeping); any other key is refused by config.ts, so a setting we cannot honour is
// never dropped silently.
import { InputError } from "../base/errors.ts";
import { OUR_MOE_KEYS, QWEN_MOE_KEYS } from "./moe.ts";

export const FAMILY_NAMES = ["llama", "qwen2", "qwen3", "mistral", "deepseek_v2", "qwen2_moe"] as const;
export type Family = (typeof FAMILY_NAMES)[number];

export interface Traits {
  qkvBias: boolean;
  qkNorm: boolean;
  /** per layer, 0: no window */
  windows: number[];
  interleavedRope: boolean;
  /** attention_bias true describes what this family computes */
  attentionBiasOk: boolean;
}

type Obj = Record<string, unknown>;

interface FamilyDef {
  /** keys read by traits() or normalize() beyond the shared schema */
  keys: string[];
  ignored: Set<string>;
  /** the shared schema's view of this family's config.json */
  normalize?: (o: Obj) => Obj;
  traits: (o: Obj, layers: number, bad: (m: string) => Error) => Traits;
  /** written by transformers (or another tool), not by bunlm */
  foreign: (o: Obj) => boolean;
}

// bookkeeping and runtime switches of every transformers config
const COMMON = [
  "architectures",
  "model_type",
  "torch_dtype",
  "dtype",
  "transformers_version",
  "use_cache",
  "_name_or_path",
  "attention_dropout",
  "output_attentions",
  "output_hidden_states",
  "return_dict",
  "transformers.js_config",
];

const plain = (layers: number): Traits => ({
  qkvBias: false,
  qkNorm: false,
  windows: new Array(layers).fill(0),
  interleavedRope: false,
  attentionBiasOk: false,
});

const posIntOrNull = (o: Obj, k: string, bad: (m: string) => Error): number | null => {
  const v = o[k];
  if (v === undefined || v === null) return null;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1) throw bad(`${k} must be a whole number ≥ 1 or null`);
  return v;
};

/**
 * Qwen2/Qwen3's windows: layer_types when given ("sliding_attention" / "full_attention"), else
 * use_sliding_window's rule (the layers from max_window_layers up), as transformers reads them.
 */
function qwenWindows(o: Obj, layers: number, bad: (m: string) => Error): number[] {
  const w = posIntOrNull(o, "sliding_window", bad);
  const types = o.layer_types;
  if (types !== undefined && types !== null) {
    if (!Array.isArray(types) || types.length !== layers)
      throw bad(`layer_types must list one type per layer (${layers})`);
    return types.map((t, l) => {
      if (t === "full_attention") return 0;
      if (t !== "sliding_attention") throw bad(`layer_types[${l}] ${JSON.stringify(t)} is not supported`);
      if (w === null) throw bad(`layer_types[${l}] is "sliding_attention" but sliding_window is null`);
      return w;
    });
  }
  if (o.use_sliding_window !== true) return new Array(layers).fill(0);
  if (w === null) throw bad("use_sliding_window is true but sliding_window is null");
  const from = posIntOrNull(o, "max_window_layers", bad) ?? 0;
  return Array.from({ length: layers }, (_, l) => (l >= from ? w : 0));
}

const QWEN_KEYS = ["use_sliding_window", "sliding_window", "max_window_layers", "layer_types"];

// DeepSeek-V2's mixture-of-experts keys (moe.ts reads them)
const DEEPSEEK_MOE = [
  "moe_intermediate_size",
  "n_shared_experts",
  "n_routed_experts",
  "ep_size",
  "routed_scaling_factor",
  "topk_method",
  "n_group",
  "topk_group",
  "num_experts_per_tok",
  "moe_layer_freq",
  "first_k_dense_replace",
  "norm_topk_prob",
  "scoring_func",
  "aux_loss_alpha",
  "seq_aux",
];

export const FAMILIES: Record<Family, FamilyDef> = {
  llama: {
    keys: ["rope_interleaved", ...OUR_MOE_KEYS],
    ignored: new Set([...COMMON, "pretraining_tp", "is_llama_config"]),
    traits: (o, layers, bad) => {
      // SmolLM2's config.json says so explicitly; true would be GPT-J pairing, which Llama never uses
      if (o.rope_interleaved !== undefined && o.rope_interleaved !== false)
        throw bad("rope_interleaved must be false for llama (rotate-half RoPE)");
      return plain(layers);
    },
    // ours always carries attn_type (transformers never writes it)
    foreign: (o) => !("attn_type" in o) && "architectures" in o,
  },
  qwen2: {
    keys: QWEN_KEYS,
    ignored: new Set(COMMON),
    traits: (o, layers, bad) => ({ ...plain(layers), qkvBias: true, windows: qwenWindows(o, layers, bad) }),
    foreign: () => true,
  },
  qwen3: {
    keys: QWEN_KEYS,
    ignored: new Set(COMMON),
    traits: (o, layers, bad) => ({ ...plain(layers), qkNorm: true, windows: qwenWindows(o, layers, bad) }),
    foreign: () => true,
  },
  mistral: {
    keys: ["sliding_window"],
    ignored: new Set(COMMON),
    traits: (o, layers, bad) => ({
      ...plain(layers),
      windows: new Array(layers).fill(posIntOrNull(o, "sliding_window", bad) ?? 0),
    }),
    foreign: () => true,
  },
  deepseek_v2: {
    keys: DEEPSEEK_MOE,
    ignored: new Set([...COMMON, "pretraining_tp"]),
    normalize: (o) => {
      // every head has its own key and value in latent attention; a null q_lora_rank projects q directly
      const { num_key_value_heads: _kv, ...rest } = o;
      return { ...rest, attn_type: "mla", q_lora_rank: o.q_lora_rank ?? 0 };
    },
    traits: (_o, layers) => ({ ...plain(layers), interleavedRope: true }),
    foreign: () => true,
  },
  qwen2_moe: {
    keys: [...QWEN_KEYS, ...QWEN_MOE_KEYS, "qkv_bias"],
    ignored: new Set(COMMON),
    traits: (o, layers, bad) => {
      // transformers' Qwen2MoeConfig: q/k/v biases unless qkv_bias is false (Qwen1.5-MoE omits the key)
      const b = o.qkv_bias ?? true;
      if (typeof b !== "boolean") throw bad("qkv_bias must be true or false");
      return { ...plain(layers), qkvBias: b, windows: qwenWindows(o, layers, bad) };
    },
    foreign: () => true,
  },
};

export function familyOf(modelType: unknown, where: string): Family {
  if (modelType === undefined) return "llama";
  if (!(FAMILY_NAMES as readonly unknown[]).includes(modelType))
    throw new InputError(
      `${where}: model_type ${JSON.stringify(modelType)} is not supported (${FAMILY_NAMES.join(", ")})`,
    );
  return modelType as Family;
}
