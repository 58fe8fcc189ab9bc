// The decoder-only transformer (Llama architecture), read top to bottom:
//   embedding → L × [x += attn(rmsnorm(x)); x += mlp(rmsnorm(x))] → rmsnorm → lm_head (or tied)
// Tokens are flattened to N = B·T rows of C channels; attention sees them as (B, T, heads, D).
// Positions come per token: 0..T-1, or restarting at document starts (pack's position_ids), which
// also keeps attention inside each document.
import { Tensor } from "../tensor/tensor.ts";
import { add, matmul } from "../ops/index.ts";
import { reshape } from "../ops/shape.ts";
import { rmsnorm } from "../ops/rmsnorm.ts";
import { rope } from "../ops/rope.ts";
import { attention } from "../ops/attention.ts";
import { swiglu } from "../ops/swiglu.ts";
import { embedding } from "../ops/embedding.ts";
import type { ModelConfig } from "./config.ts";
import type { LayerParams, ModelParams } from "./params.ts";

/** y = x · Wᵀ for a PyTorch-layout (out, in) weight */
export const linear = (x: Tensor, w: Tensor) => matmul(x, w, { transB: true });

export function attentionBlock(c: ModelConfig, L: LayerParams, x: Tensor, pos: Tensor, B: number, T: number): Tensor {
  const { num_attention_heads: H, num_key_value_heads: KV, head_dim: D } = c;
  const N = B * T;
  const q = rope(reshape(linear(x, L.q_proj), [N, H, D]), pos, c.rope_theta);
  const k = rope(reshape(linear(x, L.k_proj), [N, KV, D]), pos, c.rope_theta);
  const v = linear(x, L.v_proj);
  const a = attention(reshape(q, [B, T, H, D]), reshape(k, [B, T, KV, D]), reshape(v, [B, T, KV, D]), pos);
  return linear(reshape(a, [N, H * D]), L.o_proj);
}

export function mlpBlock(L: LayerParams, x: Tensor): Tensor {
  return linear(swiglu(linear(x, L.gate_proj), linear(x, L.up_proj)), L.down_proj);
}

export function block(c: ModelConfig, L: LayerParams, x: Tensor, pos: Tensor, B: number, T: number): Tensor {
  const h = add(x, attentionBlock(c, L, rmsnorm(x, L.input_layernorm, c.rms_norm_eps), pos, B, T));
  return add(h, mlpBlock(L, rmsnorm(h, L.post_attention_layernorm, c.rms_norm_eps)));
}

/** ids: (B·T) i32, pos: (B·T) i32 → final hidden states (B·T, C). */
export function hidden(c: ModelConfig, p: ModelParams, ids: Tensor, pos: Tensor, B: number, T: number): Tensor {
  let x = embedding(p.embed_tokens, ids);
  for (const L of p.layers) x = block(c, L, x, pos, B, T);
  return rmsnorm(x, p.norm, c.rms_norm_eps);
}

/** ids: (B·T) i32, pos: (B·T) i32 → logits (B·T, V). */
export function forward(c: ModelConfig, p: ModelParams, ids: Tensor, pos: Tensor, B: number, T: number): Tensor {
  return linear(hidden(c, p, ids, pos, B, T), p.lm_head ?? p.embed_tokens);
}

/** Positions 0..T-1 for every batch row. */
export function plainPositions(B: number, T: number): Int32Array {
  const p = new Int32Array(B * T);
  for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) p[b * T + t] = t;
  return p;
}
