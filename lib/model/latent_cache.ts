// Generation with multi-head latent attention's compressed cache (DeepSeek-V2 §2.1): per token and
// layer only the normalized latent (kv_lora_rank) and the shared RoPE key (qk_rope_head_dim) are
// kept, side by side in one row. kv_b_proj is absorbed at decode time: each head's no-RoPE query is
// mapped into latent space (q_lat = W_UKᵀ q_nope), scores are q_lat·latent + q_rope·k_rope, the
// attention output stays in latent space and W_UV maps it back per head. So decoding is multi-query
// attention over the cache rows: keys = [latent, k_rope], values = their latent part.
// The prompt is processed the ordinary way (keys and values expanded) while its latents are cached.
import { Tensor } from "../tensor/tensor.ts";
import { keep } from "../tensor/scope.ts";
import { copyBuffer } from "../gpu/index.ts";
import { add, matmul } from "../ops/index.ts";
import { reshape } from "../ops/shape.ts";
import { rmsnorm } from "../ops/rmsnorm.ts";
import { attention, attentionInto } from "../ops/attention.ts";
import { embedding } from "../ops/embedding.ts";
import { headSlice, latentKey, headScatterInto } from "../ops/head_slice.ts";
import { clearBuffer } from "../gpu/index.ts";
import { lastLogits, latentProjections, linear, mlpBlock, positionsFrom } from "./transformer.ts";
import type { ModelConfig } from "./config.ts";
import type { ModelParams } from "./params.ts";

export interface LatentCache {
  rows: Tensor[]; // per layer (maxT, kv_lora + dr): [normalized latent, rotated shared RoPE key]
  wUK: Tensor[]; // per layer (H, dn, kv_lora): kv_b_proj's no-RoPE key rows, per head
  wUV: Tensor[]; // per layer (H, dv, kv_lora): its value rows
  maxT: number;
}

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

export async function newLatentCache(c: ModelConfig, p: ModelParams, maxT: number): Promise<LatentCache> {
  const m = c.mla!,
    H = c.num_attention_heads,
    dn = m.qk_nope_head_dim,
    dv = m.v_head_dim,
    r = m.kv_lora_rank;
  const rows: Tensor[] = [],
    wUK: Tensor[] = [],
    wUV: Tensor[] = [];
  for (const L of p.layers) {
    rows.push(keep(Tensor.empty([maxT, r + m.qk_rope_head_dim])));
    // kv_b_proj (H·(dn+dv), r): for head h, rows [h(dn+dv), h(dn+dv)+dn) are W_UK, the next dv W_UV
    const w = (await L.kv_b_proj!.toArray()) as Float32Array;
    const uk = new Float32Array(H * dn * r),
      uv = new Float32Array(H * dv * r);
    for (let h = 0; h < H; h++) {
      uk.set(w.subarray(h * (dn + dv) * r, (h * (dn + dv) + dn) * r), h * dn * r);
      uv.set(w.subarray((h * (dn + dv) + dn) * r, (h + 1) * (dn + dv) * r), h * dv * r);
    }
    wUK.push(keep(Tensor.from(uk, [H, dn, r])));
    wUV.push(keep(Tensor.from(uv, [H, dv, r])));
  }
  return { rows, wUK, wUV, maxT };
}

export function disposeLatentCache(cache: LatentCache): void {
  for (const t of [...cache.rows, ...cache.wUK, ...cache.wUV]) t.dispose();
}

/** Logits (1, V) of the last of `ids` (positions start..start+n-1), extending the latent cache. */
export function latentStep(c: ModelConfig, p: ModelParams, cache: LatentCache, ids: number[], start: number): Tensor {
  const m = c.mla!,
    H = c.num_attention_heads,
    n = ids.length;
  const dn = m.qk_nope_head_dim,
    dr = m.qk_rope_head_dim,
    dv = m.v_head_dim,
    r = m.kv_lora_rank;
  const pos = positionsFrom(start, n);
  let x = embedding(p.embed_tokens, Tensor.from(ids, [n], "i32"));
  p.layers.forEach((L, l) => {
    const h = rmsnorm(x, L.input_layernorm, c.rms_norm_eps);
    const { q, latent, kRope } = latentProjections(c, L, h, pos);
    // cache rows for these tokens: [latent, k_rope]
    const row = Tensor.empty([n, 1, r + dr]);
    clearBuffer(row.buffer, 0, row.bytes);
    headScatterInto(row, reshape(latent, [n, 1, r]), 0);
    headScatterInto(row, reshape(kRope, [n, 1, dr]), r);
    copyBuffer(row.buffer, 0, cache.rows[l]!.buffer, start * (r + dr) * 4, n * (r + dr) * 4);
    let a: Tensor;
    if (n > 1 || start === 0) {
      // the prompt: keys and values expanded per head, as in training
      const kv = reshape(linear(latent, L.kv_b_proj!), [n, H, dn + dv]);
      const k = latentKey(kv, dn, kRope);
      a = reshape(
        attention(
          reshape(q, [1, n, H, dn + dr]),
          reshape(k, [1, n, H, dn + dr]),
          reshape(headSlice(kv, dn, dv), [1, n, H, dv]),
          pos,
          { scale: 1 / Math.sqrt(dn + dr) },
        ),
        [n, H * dv],
      );
    } else {
      // one new token: absorb W_UK into the query and W_UV into the output, attend over latent rows
      const qLat = matmul(reshape(headSlice(q, 0, dn), [H, 1, dn]), cache.wUK[l]!); // (H, 1, r)
      const qAbs = Tensor.empty([1, H, r + dr]);
      clearBuffer(qAbs.buffer, 0, qAbs.bytes);
      headScatterInto(qAbs, reshape(qLat, [1, H, r]), 0);
      headScatterInto(qAbs, headSlice(q, dn, dr), r);
      const oLat = Tensor.empty([1, 1, H, r]);
      const lse = Tensor.empty([1, H, 1]);
      const rows = cache.rows[l]!;
      attentionInto(oLat, lse, reshape(qAbs, [1, 1, H, r + dr]), rows, rows, pos, {
        B: 1,
        T: 1,
        Tk: start + 1,
        H,
        KV: 1,
        D: r + dr,
        DV: r,
        VS: r + dr,
        qOffset: start,
        scale: 1 / Math.sqrt(dn + dr),
      });
      a = reshape(matmul(reshape(oLat, [H, 1, r]), cache.wUV[l]!, { transB: true }), [1, H * dv]); // (H, 1, dv)
    }
    x = add(x, linear(a, L.o_proj));
    x = add(x, mlpBlock(L, rmsnorm(x, L.post_attention_layernorm, c.rms_norm_eps)));
  });
  return lastLogits(c, p, x);
}
