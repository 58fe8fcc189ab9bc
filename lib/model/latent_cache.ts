// Multi-head latent attention's compressed cache (DeepSeek-V2 §2.1): per token and layer only the
// normalized latent (kv_lora_rank) and the shared RoPE key (qk_rope_head_dim) are kept, side by side
// in one row. A prompt is read the ordinary way (keys and values expanded per head, as in training)
// while its rows are cached. A decoding step absorbs kv_b_proj (attention_decode.wgsl reads it in
// place): each head's no-RoPE query is mapped into latent space (q_lat = W_UKᵀ q_nope), scores are
// q_lat·latent + q_rope·k_rope, the output stays in latent space and W_UV maps it back per head. So
// decoding is multi-query attention over the cache rows: keys = [latent, k_rope], values = their
// latent part. The rows' layout and slots are batch_decode.ts's.
import { Tensor } from "../tensor/tensor.ts";
import { clearBuffer } from "../gpu/index.ts";
import { reshape } from "../ops/shape.ts";
import { attention, attentionDecodeInto, cacheAppendInto } from "../ops/attention.ts";
import { headSlice, latentKey, headScatterInto } from "../ops/head_slice.ts";
import { latentProjections, linear } from "./transformer.ts";
import type { ModelConfig } from "./config.ts";
import type { LayerParams } from "./params.ts";

/** Bytes per token held by the latent cache, and by an expanded K/V cache of the same model. */
export function cacheBytesPerToken(c: ModelConfig): { latent: number; expanded: number } {
  const m = c.mla!,
    H = c.num_attention_heads,
    L = c.num_hidden_layers;
  return {
    latent: L * (m.kv_lora_rank + m.qk_rope_head_dim) * 4,
    expanded: L * H * (m.qk_nope_head_dim + m.qk_rope_head_dim + m.v_head_dim) * 4,
  };
}

/** Floats in one token's cache row: [latent, RoPE key]. */
export function latentRowWidth(c: ModelConfig): number {
  return c.mla!.kv_lora_rank + c.mla!.qk_rope_head_dim;
}

/**
 * Prompts packed into N rows of h (positions restart at each prompt, so none sees another): the
 * attention output (N, H·dv), as training computes it, and the rows to cache (N, kv_lora + dr).
 */
export function latentPrefill(
  c: ModelConfig,
  L: LayerParams,
  h: Tensor,
  pos: Tensor,
  window = 0,
): { a: Tensor; rows: Tensor } {
  const m = c.mla!,
    H = c.num_attention_heads,
    N = h.shape[0]!;
  const dn = m.qk_nope_head_dim,
    dr = m.qk_rope_head_dim,
    dv = m.v_head_dim,
    r = m.kv_lora_rank;
  const { q, latent, kRope } = latentProjections(c, L, h, pos);
  const rows = Tensor.empty([N, 1, r + dr]);
  clearBuffer(rows.buffer, 0, rows.bytes);
  headScatterInto(rows, reshape(latent, [N, 1, r]), 0);
  headScatterInto(rows, reshape(kRope, [N, 1, dr]), r);
  const kv = reshape(linear(latent, L.kv_b_proj!), [N, H, dn + dv]);
  const k = latentKey(kv, dn, kRope);
  const a = attention(
    reshape(q, [1, N, H, dn + dr]),
    reshape(k, [1, N, H, dn + dr]),
    reshape(headSlice(kv, dn, dv), [1, N, H, dv]),
    pos,
    { scale: c.attn_scale, window },
  );
  return { a: reshape(a, [N, H * dv]), rows: reshape(rows, [N, r + dr]) };
}

/**
 * One new token per batch row (h: (B, C) at positions pos): its row goes into cache row at[b], then
 * it attends over its span of rows (span: (B, 2) u32, the new row included) → (B, H·dv).
 */
export function latentDecode(
  c: ModelConfig,
  L: LayerParams,
  h: Tensor,
  pos: Tensor,
  cache: Tensor,
  at: Tensor,
  span: Tensor,
  window = 0,
): Tensor {
  const m = c.mla!,
    H = c.num_attention_heads,
    B = h.shape[0]!;
  const dn = m.qk_nope_head_dim,
    dr = m.qk_rope_head_dim,
    dv = m.v_head_dim,
    r = m.kv_lora_rank;
  const { q, latent, kRope } = latentProjections(c, L, h, pos);
  cacheAppendInto(cache, latent, at, r + dr, 0);
  cacheAppendInto(cache, kRope, at, r + dr, r);
  const o = Tensor.empty([B, H, dv]);
  attentionDecodeInto(
    o,
    q,
    cache,
    cache,
    span,
    { B, H, KV: 1, D: r + dr, DV: r, VS: r + dr, scale: c.attn_scale, window, latent: { dn, dout: dv } },
    L.kv_b_proj!,
  );
  return reshape(o, [B, H * dv]);
}
