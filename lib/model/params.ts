// The model's parameters: one named record per layer, Hugging Face Llama tensor names (so our
// model.safetensors is a LlamaForCausalLM checkpoint), shapes, and initialization.
// Linear weights are (out, in) as in PyTorch: y = x · Wᵀ.
import { Tensor } from "../tensor/tensor.ts";
import { formatBytes, maxTensorBytes, TooLargeError } from "../gpu/index.ts";
import { keep } from "../tensor/scope.ts";
import { Rng } from "../base/rng.ts";
import type { ModelConfig } from "./config.ts";
import { moeFromNamed, moeNamed, moeShapes, type MoeParams } from "./moe.ts";

export interface LayerParams {
  input_layernorm: Tensor; // (C)
  o_proj: Tensor; // (C, H·DV)
  post_attention_layernorm: Tensor; // (C)
  // the dense MLP; absent on a mixture-of-experts layer, which has `moe` instead
  gate_proj?: Tensor; // (I, C)
  up_proj?: Tensor; // (I, C)
  down_proj?: Tensor; // (C, I)
  // grouped-query attention
  q_proj?: Tensor; // (H·D, C); also latent attention's query when q_lora_rank is 0: (H·(dn+dr), C)
  k_proj?: Tensor; // (KV·D, C)
  v_proj?: Tensor; // (KV·D, C)
  q_bias?: Tensor; // (H·D) Qwen2
  k_bias?: Tensor; // (KV·D)
  v_bias?: Tensor; // (KV·D)
  q_norm?: Tensor; // (D) Qwen3: RMSNorm over each head's query
  k_norm?: Tensor; // (D)
  // multi-head latent attention (DeepSeek-V2 names)
  q_a_proj?: Tensor; // (q_lora, C)
  q_a_layernorm?: Tensor; // (q_lora)
  q_b_proj?: Tensor; // (H·(dn+dr), q_lora)
  kv_a_proj_with_mqa?: Tensor; // (kv_lora + dr, C): the latent and the shared RoPE key
  kv_a_layernorm?: Tensor; // (kv_lora)
  kv_b_proj?: Tensor; // (H·(dn+dv), kv_lora): each head's no-RoPE key and value from the latent
  moe?: MoeParams; // a mixture-of-experts MLP (moe.ts: mlp.gate, mlp.experts.{e}.*, mlp.shared_experts.*)
}

export type LayerKey = Exclude<keyof LayerParams, "moe">;

export interface ModelParams {
  embed_tokens: Tensor; // (V, C)
  layers: LayerParams[];
  norm: Tensor; // (C)
  lm_head: Tensor | null; // (V, C); null when tied to embed_tokens
}

export const LAYER_NAMES: Record<LayerKey, string> = {
  input_layernorm: "input_layernorm.weight",
  q_proj: "self_attn.q_proj.weight",
  k_proj: "self_attn.k_proj.weight",
  v_proj: "self_attn.v_proj.weight",
  q_bias: "self_attn.q_proj.bias",
  k_bias: "self_attn.k_proj.bias",
  v_bias: "self_attn.v_proj.bias",
  q_norm: "self_attn.q_norm.weight",
  k_norm: "self_attn.k_norm.weight",
  q_a_proj: "self_attn.q_a_proj.weight",
  q_a_layernorm: "self_attn.q_a_layernorm.weight",
  q_b_proj: "self_attn.q_b_proj.weight",
  kv_a_proj_with_mqa: "self_attn.kv_a_proj_with_mqa.weight",
  kv_a_layernorm: "self_attn.kv_a_layernorm.weight",
  kv_b_proj: "self_attn.kv_b_proj.weight",
  o_proj: "self_attn.o_proj.weight",
  post_attention_layernorm: "post_attention_layernorm.weight",
  gate_proj: "mlp.gate_proj.weight",
  up_proj: "mlp.up_proj.weight",
  down_proj: "mlp.down_proj.weight",
};

/** One layer's parameters, in order, with their shapes, for this config's attention type. */
export function layerShapes(c: ModelConfig): [LayerKey, number[]][] {
  const { hidden_size: C, head_dim: D, num_attention_heads: H, num_key_value_heads: KV, intermediate_size: I } = c;
  let attn: [LayerKey, number[]][];
  if (c.attn_type === "mla") {
    const m = c.mla!;
    const qd = H * (m.qk_nope_head_dim + m.qk_rope_head_dim);
    attn = [
      ...(m.q_lora_rank > 0
        ? ([
            ["q_a_proj", [m.q_lora_rank, C]],
            ["q_a_layernorm", [m.q_lora_rank]],
            ["q_b_proj", [qd, m.q_lora_rank]],
          ] as [LayerKey, number[]][])
        : ([["q_proj", [qd, C]]] as [LayerKey, number[]][])),
      ["kv_a_proj_with_mqa", [m.kv_lora_rank + m.qk_rope_head_dim, C]],
      ["kv_a_layernorm", [m.kv_lora_rank]],
      ["kv_b_proj", [H * (m.qk_nope_head_dim + m.v_head_dim), m.kv_lora_rank]],
      ["o_proj", [C, H * m.v_head_dim]],
    ];
  } else
    attn = [
      ["q_proj", [H * D, C]],
      ["k_proj", [KV * D, C]],
      ["v_proj", [KV * D, C]],
      ...((c.qkv_bias
        ? [
            ["q_bias", [H * D]],
            ["k_bias", [KV * D]],
            ["v_bias", [KV * D]],
          ]
        : []) as [LayerKey, number[]][]),
      ...((c.qk_norm
        ? [
            ["q_norm", [D]],
            ["k_norm", [D]],
          ]
        : []) as [LayerKey, number[]][]),
      ["o_proj", [C, H * D]],
    ];
  return [
    ["input_layernorm", [C]],
    ...attn,
    ["post_attention_layernorm", [C]],
    ["gate_proj", [I, C]],
    ["up_proj", [I, C]],
    ["down_proj", [C, I]],
  ];
}

const DENSE_MLP = new Set<LayerKey>(["gate_proj", "up_proj", "down_proj"]);

/** Layer l's own parameters: a mixture-of-experts layer has experts in place of the dense MLP. */
function layerKeys(c: ModelConfig, l: number): [LayerKey, number[]][] {
  const layer = layerShapes(c);
  return c.moe?.layers[l] ? layer.filter(([k]) => !DENSE_MLP.has(k)) : layer;
}

/** Every parameter's HF name and shape, in a fixed order (the order of model.safetensors). */
export function paramShapes(c: ModelConfig): [string, number[]][] {
  const { hidden_size: C, vocab_size: V } = c;
  const out: [string, number[]][] = [["model.embed_tokens.weight", [V, C]]];
  for (let l = 0; l < c.num_hidden_layers; l++) {
    for (const [k, shape] of layerKeys(c, l)) out.push([`model.layers.${l}.${LAYER_NAMES[k]}`, shape]);
    if (c.moe?.layers[l]) for (const [n, shape] of moeShapes(c.moe, C)) out.push([`model.layers.${l}.${n}`, shape]);
  }
  out.push(["model.norm.weight", [C]]);
  if (!c.tie_word_embeddings) out.push(["lm_head.weight", [V, C]]);
  return out;
}

/** name → tensor, the flat view of a ModelParams (for checkpoints and optimizers). */
export function namedParams(p: ModelParams): Map<string, Tensor> {
  const m = new Map<string, Tensor>();
  m.set("model.embed_tokens.weight", p.embed_tokens);
  p.layers.forEach((L, l) => {
    for (const k of Object.keys(LAYER_NAMES) as LayerKey[])
      if (L[k]) m.set(`model.layers.${l}.${LAYER_NAMES[k]}`, L[k]!);
    if (L.moe) for (const [n, t] of moeNamed(L.moe)) m.set(`model.layers.${l}.${n}`, t);
  });
  m.set("model.norm.weight", p.norm);
  if (p.lm_head) m.set("lm_head.weight", p.lm_head);
  return m;
}

/** Build the record from name → tensor (all names of paramShapes must be there). */
export function fromNamed(c: ModelConfig, get: (name: string, shape: number[]) => Tensor): ModelParams {
  assertFits(c);
  const layers: LayerParams[] = [];
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const L = {} as LayerParams;
    for (const [k, shape] of layerKeys(c, l)) L[k] = get(`model.layers.${l}.${LAYER_NAMES[k]}`, shape);
    if (c.moe?.layers[l])
      L.moe = moeFromNamed(c.moe, c.hidden_size, (n, shape) => get(`model.layers.${l}.${n}`, shape));
    layers.push(L);
  }
  const shapes = new Map(paramShapes(c));
  return {
    embed_tokens: get("model.embed_tokens.weight", shapes.get("model.embed_tokens.weight")!),
    layers,
    norm: get("model.norm.weight", shapes.get("model.norm.weight")!),
    lm_head: c.tie_word_embeddings ? null : get("lm_head.weight", shapes.get("lm_head.weight")!),
  };
}

/** Refuse, before allocating anything, a config with a weight bigger than the adapter holds in one buffer. */
export function assertFits(c: ModelConfig): void {
  const max = maxTensorBytes();
  for (const [name, shape] of paramShapes(c)) {
    const bytes = shape.reduce((a, b) => a * b, 1) * 4;
    if (bytes > max)
      throw new TooLargeError(
        bytes,
        max,
        `the weight ${name} [${shape}] (${formatBytes(bytes)})`,
        "make the model smaller (hidden_size, intermediate_size, vocab_size)",
      );
  }
}

/** Standard normal samples from the seeded generator (Box-Muller). */
export function normals(rng: Rng, n: number, std: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = 1 - rng.next(),
      v = rng.next();
    const r = Math.sqrt(-2 * Math.log(u)) * std;
    out[i] = r * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) out[i + 1] = r * Math.sin(2 * Math.PI * v);
  }
  return out;
}

/**
 * GPT-2 / nanoGPT initialization: every matrix normal(0, 0.02), the projections that write into the
 * residual stream (o_proj, down_proj) scaled by 1/sqrt(2·layers) so the residual's variance does not
 * grow with depth; norms start at 1, biases at 0. Parameters are kept (outlive scopes) and require
 * gradients.
 */
export function initParams(c: ModelConfig, seed: number): ModelParams {
  const rng = new Rng(seed);
  const std = c.initializer_range;
  const resid = std / Math.sqrt(2 * c.num_hidden_layers);
  return fromNamed(c, (name, shape) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = name.endsWith("norm.weight")
      ? new Float32Array(n).fill(1)
      : name.endsWith(".bias")
        ? new Float32Array(n)
        : normals(rng, n, /o_proj|down_proj/.test(name) ? resid : std);
    return keep(Tensor.from(data, shape).param());
  });
}

export function countParams(c: ModelConfig): number {
  return paramShapes(c).reduce((n, [, s]) => n + s.reduce((a, b) => a * b, 1), 0);
}

export function disposeParams(p: ModelParams): void {
  for (const t of namedParams(p).values()) {
    t.grad?.dispose();
    t.dispose();
  }
}

export type Module = "embedding" | "attention" | "mlp" | "norms" | "head" | "other";

/** Which part of the model a (Hugging Face Llama) tensor name belongs to. */
export function moduleOf(name: string): Module {
  if (name.includes("embed_tokens")) return "embedding";
  if (name.includes("self_attn")) return "attention";
  if (name.includes(".mlp.")) return "mlp";
  if (/norm/.test(name)) return "norms";
  if (name.startsWith("lm_head")) return "head";
  return "other";
}
