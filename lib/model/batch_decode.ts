// Decoding with a KV cache, for one sequence or a batch: the cache, the prefill that reads prompts
// into it, and the decoding step that reads one new token per sequence (generate.ts's DecodeState
// drives one slot, generate_batch.ts many).
// The batch is ragged, not padded: each sequence owns a slot of maxT cache rows and keeps its own
// positions and length. A prefill packs the prompts into one sequence whose positions restart at each
// prompt (pack's document masks: attention stays inside each), so nothing is computed for padding,
// and copies each prompt's rows into the slots that start from it (a GRPO group: one prompt, G
// slots, one prefill). A decoding step is one forward of B rows, one per sequence, each at its own
// position, its new key and value appended to its own slot (attention_decode_append.wgsl), attending
// over its own rows (attention_decode.wgsl). Every op of both works row by row with the same
// arithmetic whatever else is in the batch, so a sequence gets the logits it would get alone.
// Cache layout, per layer: (slots·maxT, width) rows, slot s's token t at row s·maxT + t; width KV·D
// for GQA keys and values, kv_lora_rank + qk_rope_head_dim for latent attention's rows (in k; v unused).
import { Tensor } from "../tensor/tensor.ts";
import { keep } from "../tensor/scope.ts";
import { copyBuffer } from "../gpu/index.ts";
import { reshape } from "../ops/shape.ts";
import { rmsnorm } from "../ops/rmsnorm.ts";
import { attention, attentionDecodeInto, cacheAppendInto } from "../ops/attention.ts";
import { embedding } from "../ops/embedding.ts";
import { gqaProjections, linear, logitsOf, mlpBlock } from "./transformer.ts";
import { latentDecode, latentPrefill, latentRowWidth } from "./latent_cache.ts";
import type { ModelConfig } from "./config.ts";
import type { LayerParams, ModelParams } from "./params.ts";

export interface SeqCache {
  slots: number;
  /** rows per slot: the most positions a sequence may use */
  maxT: number;
  /** floats per row */
  width: number;
  /** per layer (slots·maxT, width): GQA keys, or latent attention's [latent, RoPE key] rows */
  k: Tensor[];
  /** per layer (slots·maxT, width): GQA values; empty for latent attention */
  v: Tensor[];
}

export function openCache(c: ModelConfig, slots: number, maxT: number): SeqCache {
  const latent = c.attn_type === "mla";
  const width = latent ? latentRowWidth(c) : c.num_key_value_heads * c.head_dim;
  const rows = () => keep(Tensor.empty([slots * maxT, width]));
  const k: Tensor[] = [],
    v: Tensor[] = [];
  for (let l = 0; l < c.num_hidden_layers; l++) {
    k.push(rows());
    if (!latent) v.push(rows());
  }
  return { slots, maxT, width, k, v };
}

export function disposeCache(cache: SeqCache): void {
  for (const t of [...cache.k, ...cache.v]) t.dispose();
  cache.k = [];
  cache.v = [];
}

/** Room for maxT rows per slot, keeping each slot's first `used` rows. */
export function growCache(cache: SeqCache, maxT: number, used: number): void {
  const bytes = cache.width * 4;
  for (const ts of [cache.k, cache.v])
    ts.forEach((t, i) => {
      const bigger = keep(Tensor.empty([cache.slots * maxT, cache.width]));
      if (used)
        for (let s = 0; s < cache.slots; s++)
          copyBuffer(t.buffer, s * cache.maxT * bytes, bigger.buffer, s * maxT * bytes, used * bytes);
      t.dispose();
      ts[i] = bigger;
    });
  cache.maxT = maxT;
}

/** x += attention and MLP, layer by layer; attend(l, L, h) gives layer l's attention output before o_proj. */
function layers(c: ModelConfig, p: ModelParams, x: Tensor, attend: (l: number, L: LayerParams, h: Tensor) => Tensor) {
  p.layers.forEach((L, l) => {
    x = linear(attend(l, L, rmsnorm(x, L.input_layernorm, c.rms_norm_eps)), L.o_proj, x);
    x = mlpBlock(L, rmsnorm(x, L.post_attention_layernorm, c.rms_norm_eps), x);
  });
  return x;
}

function logits(c: ModelConfig, p: ModelParams, x: Tensor): Tensor {
  return logitsOf(p, rmsnorm(x, p.norm, c.rms_norm_eps));
}

/**
 * Read `prompts` from position 0, prompt i into each slot of slotsOf[i] (the slots' earlier rows are
 * overwritten); the logits (prompts, V) after each prompt's last token.
 */
export function prefill(
  c: ModelConfig,
  p: ModelParams,
  cache: SeqCache,
  prompts: number[][],
  slotsOf: number[][],
): Tensor {
  const { num_attention_heads: H, num_key_value_heads: KV, head_dim: D } = c;
  const starts: number[] = [];
  let N = 0;
  for (const q of prompts) {
    if (!q.length || q.length > cache.maxT)
      throw new Error(`prefill: a prompt of ${q.length} tokens in slots of ${cache.maxT}`);
    starts.push(N);
    N += q.length;
  }
  const pos = Tensor.from(
    prompts.flatMap((q) => q.map((_, t) => t)),
    [N],
    "i32",
  );
  const bytes = cache.width * 4;
  const store = (src: Tensor, dst: Tensor) =>
    prompts.forEach((q, i) => {
      for (const s of slotsOf[i]!)
        copyBuffer(src.buffer, starts[i]! * bytes, dst.buffer, s * cache.maxT * bytes, q.length * bytes);
    });
  const x = layers(c, p, embedding(p.embed_tokens, Tensor.from(prompts.flat(), [N], "i32")), (l, L, h) => {
    if (c.attn_type === "mla") {
      const { a, rows } = latentPrefill(c, L, h, pos, c.windows[l] ?? 0);
      store(rows, cache.k[l]!);
      return a;
    }
    const { q, k, v } = gqaProjections(c, L, h, pos);
    store(k, cache.k[l]!);
    store(v, cache.v[l]!);
    const a = attention(reshape(q, [1, N, H, D]), reshape(k, [1, N, KV, D]), reshape(v, [1, N, KV, D]), pos, {
      scale: c.attn_scale,
      window: c.windows[l] ?? 0,
    });
    return reshape(a, [N, H * D]);
  });
  // each prompt's last row
  const C = c.hidden_size;
  const last = Tensor.empty([prompts.length, C]);
  prompts.forEach((q, i) => copyBuffer(x.buffer, (starts[i]! + q.length - 1) * C * 4, last.buffer, i * C * 4, C * 4));
  return logits(c, p, last);
}

/**
 * One token per batch row: tokens[b] sits at position positions[b] of the sequence in slot slots[b]
 * (which holds its positions before). Extends each slot by a row; the logits (B, V).
 */
export function decodeStep(
  c: ModelConfig,
  p: ModelParams,
  cache: SeqCache,
  tokens: number[],
  slots: number[],
  positions: number[],
): Tensor {
  const B = tokens.length;
  const { num_attention_heads: H, num_key_value_heads: KV, head_dim: D } = c;
  for (let b = 0; b < B; b++)
    if (positions[b]! >= cache.maxT || slots[b]! >= cache.slots)
      throw new Error(`decodeStep: position ${positions[b]} of slot ${slots[b]} is outside the cache`);
  const pos = Tensor.from(positions, [B], "i32");
  const at = Tensor.from(
    slots.map((s, b) => s * cache.maxT + positions[b]!),
    [B],
    "u32",
  );
  const span = Tensor.from(
    slots.flatMap((s, b) => [s * cache.maxT, positions[b]! + 1]),
    [B, 2],
    "u32",
  );
  const x = layers(c, p, embedding(p.embed_tokens, Tensor.from(tokens, [B], "i32")), (l, L, h) => {
    if (c.attn_type === "mla") return latentDecode(c, L, h, pos, cache.k[l]!, at, span, c.windows[l] ?? 0);
    const { q, k, v } = gqaProjections(c, L, h, pos);
    cacheAppendInto(cache.k[l]!, k, at, cache.width, 0);
    cacheAppendInto(cache.v[l]!, v, at, cache.width, 0);
    const o = Tensor.empty([B, H, D]);
    attentionDecodeInto(o, q, cache.k[l]!, cache.v[l]!, span, {
      B,
      H,
      KV,
      D,
      DV: D,
      VS: D,
      scale: c.attn_scale,
      window: c.windows[l] ?? 0,
    });
    return reshape(o, [B, H * D]);
  });
  return logits(c, p, x);
}
