// The decoder-only transformer (Llama architecture), read top to bottom:
//   embedding → L × [x += attn(rmsnorm(x)); x += mlp(rmsnorm(x))] → rmsnorm → lm_head (or tied)
// Fewer dispatches, the same arithmetic: the attention half's residual add is the store of o_proj,
// and the MLP half (norm, gate and up, SwiGLU, down, residual) is one op, swiglu.ts's swigluMlp.
// Tokens are flattened to N = B·T rows of C channels; attention sees them as (B, T, heads, D).
// Positions come per token: 0..T-1, or restarting at document starts (pack's position_ids), which
// also keeps attention inside each document. What the families add (config.ts, families.ts): q/k/v
// biases, per-head q/k norms, a sliding window per layer, scaled or interleaved RoPE, a softmax scale.
import { Tensor } from "../tensor/tensor.ts";
import { checkpoint, recomputeLayers } from "../tensor/checkpoint.ts";
import { copyBuffer } from "../gpu/index.ts";
import { matmul } from "../ops/index.ts";
import { reshape } from "../ops/shape.ts";
import { rmsnorm } from "../ops/rmsnorm.ts";
import { rope } from "../ops/rope.ts";
import { attention } from "../ops/attention.ts";
import { swigluMlp } from "../ops/swiglu.ts";
import { embedding } from "../ops/embedding.ts";
import { addBias } from "../ops/bias.ts";
import { headSlice, latentKey } from "../ops/head_slice.ts";
import type { ModelConfig } from "./config.ts";
import { adaptedLinear, adapterOf } from "./lora.ts";
import type { LayerParams, ModelParams } from "./params.ts";
import { moeMlp } from "./moe.ts";

/** y = x · Wᵀ (+ residual, in the same dispatch) for a PyTorch-layout (out, in) weight; plus its LoRA adapter's path when it has one */
export const linear = (x: Tensor, w: Tensor, residual?: Tensor) => {
  const a = adapterOf(w);
  return a ? adaptedLinear(x, w, a, residual) : matmul(x, w, { transB: true, residual });
};

/** RMSNorm over each head's vector of x (n, heads, D) with one (D) weight (Qwen3's q_norm, k_norm). */
function headNorm(c: ModelConfig, x: Tensor, w: Tensor): Tensor {
  const [n, NH, D] = x.shape as [number, number, number];
  return reshape(rmsnorm(reshape(x, [n * NH, D]), w, c.rms_norm_eps), [n, NH, D]);
}

/**
 * Grouped-query attention's projections of normed hidden states h (n, C) at positions pos: the
 * rotated queries (n, H, D) and keys (n, KV, D), and the values (n, KV·D). Training and every
 * decoding path start here.
 */
export function gqaProjections(c: ModelConfig, L: LayerParams, h: Tensor, pos: Tensor) {
  const { num_attention_heads: H, num_key_value_heads: KV, head_dim: D } = c;
  const n = h.shape[0]!;
  const proj = (w: Tensor, b: Tensor | undefined) => (b ? addBias(linear(h, w), b) : linear(h, w));
  let q = reshape(proj(L.q_proj!, L.q_bias), [n, H, D]);
  let k = reshape(proj(L.k_proj!, L.k_bias), [n, KV, D]);
  if (c.qk_norm) {
    q = headNorm(c, q, L.q_norm!);
    k = headNorm(c, k, L.k_norm!);
  }
  return { q: rope(q, pos, c.rope), k: rope(k, pos, c.rope), v: proj(L.v_proj!, L.v_bias) };
}

/** o_proj(attention(x)), added to `residual` when given; `window`: the layer's sliding window (0: none). */
export function attentionBlock(
  c: ModelConfig,
  L: LayerParams,
  x: Tensor,
  pos: Tensor,
  B: number,
  T: number,
  residual?: Tensor,
  window = 0,
): Tensor {
  const { num_attention_heads: H, num_key_value_heads: KV, head_dim: D } = c;
  const N = B * T;
  const { q, k, v } = gqaProjections(c, L, x, pos);
  const a = attention(reshape(q, [B, T, H, D]), reshape(k, [B, T, KV, D]), reshape(v, [B, T, KV, D]), pos, {
    scale: c.attn_scale,
    window,
  });
  return linear(reshape(a, [N, H * D]), L.o_proj, residual);
}

/**
 * Multi-head latent attention (DeepSeek-V2, Liu et al. 2024). Keys and values come from a small
 * per-token latent (kv_lora_rank wide, RMS-normalized) through kv_b_proj; a RoPE key of
 * qk_rope_head_dim is computed once per token and shared by every head; queries are split the same
 * way (no-RoPE dn + RoPE dr dims), optionally through their own low-rank path (q_lora_rank > 0).
 *   score = q_nope·k_nope + q_rope·k_rope, scaled by 1/sqrt(dn + dr); values are dv wide.
 */
export function latentAttentionBlock(
  c: ModelConfig,
  L: LayerParams,
  x: Tensor,
  pos: Tensor,
  B: number,
  T: number,
  residual?: Tensor,
  window = 0,
): Tensor {
  const m = c.mla!;
  const H = c.num_attention_heads,
    N = B * T;
  const dn = m.qk_nope_head_dim,
    dr = m.qk_rope_head_dim,
    dv = m.v_head_dim;
  const { q, latent, kRope } = latentProjections(c, L, x, pos);
  const kv = reshape(linear(latent, L.kv_b_proj!), [N, H, dn + dv]);
  const k = latentKey(kv, dn, kRope);
  const v = headSlice(kv, dn, dv);
  const a = attention(reshape(q, [B, T, H, dn + dr]), reshape(k, [B, T, H, dn + dr]), reshape(v, [B, T, H, dv]), pos, {
    scale: c.attn_scale,
    window,
  });
  return linear(reshape(a, [N, H * dv]), L.o_proj, residual);
}

/**
 * Latent attention's per-token projections of x (N, C): the query q (N, H, dn + dr) with its RoPE
 * part rotated, the normalized latent (N, kv_lora_rank) and the rotated shared RoPE key (N, dr).
 * Training and the compressed-cache decoder (latent_cache.ts) both start here.
 */
export function latentProjections(
  c: ModelConfig,
  L: LayerParams,
  x: Tensor,
  pos: Tensor,
): { q: Tensor; latent: Tensor; kRope: Tensor } {
  const m = c.mla!;
  const H = c.num_attention_heads,
    N = x.shape[0]!;
  const dn = m.qk_nope_head_dim,
    dr = m.qk_rope_head_dim,
    r = m.kv_lora_rank;
  const qIn =
    m.q_lora_rank > 0
      ? linear(rmsnorm(linear(x, L.q_a_proj!), L.q_a_layernorm!, c.rms_norm_eps), L.q_b_proj!)
      : linear(x, L.q_proj!);
  const q = rope(reshape(qIn, [N, H, dn + dr]), pos, c.rope, { offset: dn, dims: dr });
  const ckv = rope(reshape(linear(x, L.kv_a_proj_with_mqa!), [N, 1, r + dr]), pos, c.rope, {
    offset: r,
    dims: dr,
  });
  const latent = rmsnorm(reshape(headSlice(ckv, 0, r), [N, r]), L.kv_a_layernorm!, c.rms_norm_eps);
  const kRope = reshape(headSlice(ckv, r, dr), [N, dr]);
  return { q, latent, kRope };
}

/** down(silu(gate(x)) ⊙ up(x)), or a mixture of experts (moe.ts), added to `residual` when given. */
export function mlpBlock(L: LayerParams, x: Tensor, residual?: Tensor): Tensor {
  if (L.moe) return moeMlp(L.moe, x, residual);
  return swigluMlp(x, L.gate_proj!, L.up_proj!, L.down_proj!, { residual });
}

/** h + mlp(rmsnorm(h)), one op: the norm's backward also adds the residual's gradient. */
export function normedMlpBlock(c: ModelConfig, L: LayerParams, h: Tensor): Tensor {
  if (L.moe) return moeMlp(L.moe, rmsnorm(h, L.post_attention_layernorm, c.rms_norm_eps), h);
  const norm = { weight: L.post_attention_layernorm, eps: c.rms_norm_eps };
  return swigluMlp(h, L.gate_proj!, L.up_proj!, L.down_proj!, { norm, residual: h });
}

/** Layer l of the model on x (B·T, C). */
export function block(c: ModelConfig, L: LayerParams, x: Tensor, pos: Tensor, B: number, T: number, l = 0): Tensor {
  const attn = c.attn_type === "mla" ? latentAttentionBlock : attentionBlock;
  const h = attn(c, L, rmsnorm(x, L.input_layernorm, c.rms_norm_eps), pos, B, T, x, c.windows[l] ?? 0);
  return normedMlpBlock(c, L, h);
}

/** ids: (B·T) i32, pos: (B·T) i32 → final hidden states (B·T, C). */
export function hidden(c: ModelConfig, p: ModelParams, ids: Tensor, pos: Tensor, B: number, T: number): Tensor {
  let x = embedding(p.embed_tokens, ids);
  // --recompute: each layer keeps only its input; its activations are recomputed in the backward
  const recompute = recomputeLayers();
  p.layers.forEach((L, l) => {
    x = recompute ? checkpoint((xl) => block(c, L, xl, pos, B, T, l), [x]) : block(c, L, x, pos, B, T, l);
  });
  return rmsnorm(x, p.norm, c.rms_norm_eps);
}

/** The output head: logits (n, V) of final hidden states h (n, C) that are already normed. */
export function logitsOf(p: ModelParams, h: Tensor): Tensor {
  return linear(h, p.lm_head ?? p.embed_tokens);
}

/** ids: (B·T) i32, pos: (B·T) i32 → logits (B·T, V). */
export function forward(c: ModelConfig, p: ModelParams, ids: Tensor, pos: Tensor, B: number, T: number): Tensor {
  return logitsOf(p, hidden(c, p, ids, pos, B, T));
}

/** A (1, cols) copy of the last row of x (rows, cols), outside autograd: what decoding samples from. */
export function lastRow(x: Tensor): Tensor {
  const cols = x.shape[x.shape.length - 1]!;
  const out = Tensor.empty([1, cols]);
  copyBuffer(x.buffer, (x.size - cols) * 4, out.buffer, 0, cols * 4);
  return out;
}

/** Logits (1, V) of the last of the final hidden states x (n, C) that have not been normed yet. */
export function lastLogits(c: ModelConfig, p: ModelParams, x: Tensor): Tensor {
  return logitsOf(p, rmsnorm(lastRow(x), p.norm, c.rms_norm_eps));
}

/** Positions 0..T-1 for every batch row. */
/** Positions start..start+n-1 of n tokens that continue a sequence (generation's cached steps): (n) i32. */
export function positionsFrom(start: number, n: number): Tensor {
  return Tensor.from(
    Array.from({ length: n }, (_, i) => start + i),
    [n],
    "i32",
  );
}

export function plainPositions(B: number, T: number): Int32Array {
  const p = new Int32Array(B * T);
  for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) p[b * T + t] = t;
  return p;
}
