// Autoregressive generation with a KV cache: the prompt goes through the model once (prefill), its
// keys and values stay in per-layer caches, and each new token costs one single-token pass that
// attends over the cache (batch_decode.ts, the same code that decodes a batch of sequences, so one
// sequence alone gets what it gets in any batch). Without the cache (useCache: false) every step
// recomputes the whole sequence — the reference the cache must reproduce token for token.
// A DecodeState outlives one generation: a chat's next turn continues it, prefilling only the tokens
// the cache does not hold yet (queries at positions start.. attend over every cached key). The cache
// grows by doubling, so a conversation pays for the context it uses, not max_position_embeddings.
// Each step's logits are checked on the host before sampling: a model whose weights are finite but
// overflow (or are otherwise broken) would otherwise yield argmax-of-NaN ids, 0 after 0, that look
// like output. The check is one pass over a row the sampler reads anyway.
import { Tensor } from "../tensor/tensor.ts";
import { scope, scopeAsync } from "../tensor/scope.ts";
import { noGrad } from "../tensor/autograd.ts";
import { copyBuffer } from "../gpu/index.ts";
import { reshape } from "../ops/shape.ts";
import { rmsnorm } from "../ops/rmsnorm.ts";
import { attentionInto } from "../ops/attention.ts";
import { embedding } from "../ops/embedding.ts";
import { Rng } from "../base/rng.ts";
import {
  forward,
  gqaProjections,
  lastLogits,
  lastRow,
  linear,
  mlpBlock,
  plainPositions,
  positionsFrom,
} from "./transformer.ts";
import { sample, logprobOf, logitsFault, type LogitsFault, type SampleOpts } from "./sample.ts";
import { decodeStep, disposeCache, growCache, openCache, prefill, type SeqCache } from "./batch_decode.ts";
import type { ModelConfig } from "./config.ts";
import type { ModelParams } from "./params.ts";

export interface GenerateOpts extends SampleOpts {
  maxNewTokens: number;
  seed: number;
  /** continue this generator instead of a new one from `seed` (a chat's turns draw from one stream) */
  rng?: Rng;
  stop: number[];
  useCache?: boolean;
  onToken?: (id: number) => void;
}

/** The logits of a step cannot be sampled from: the model, not the prompt or the options, is broken. */
export class NonFiniteLogitsError extends Error {
  code = "E_NONFINITE_LOGITS";
  constructor(
    readonly fault: LogitsFault,
    readonly token: number,
    /** in a batch: the sequence's index */
    readonly sequence?: number,
  ) {
    super(`the model's logits ${_FAULT_WORDS[fault]} at generated token ${token}`);
  }
}

const _FAULT_WORDS: Record<LogitsFault, string> = {
  NaN: "are NaN",
  "+Infinity": "reach +Infinity",
  "all -Infinity": "are all -Infinity (nothing can be sampled)",
};

export interface Generation {
  ids: number[];
  logprobs: number[];
  finish: "stop" | "length";
  seconds: number;
}

/**
 * Logits (1, V) of the last of `ids`, which continue a GQA cache at positions start..start+n-1 (a
 * chat's next turn): queries at positions start.. attend over every cached key, extending the cache.
 */
function step(c: ModelConfig, p: ModelParams, cache: SeqCache, ids: number[], start: number): Tensor {
  const n = ids.length;
  const { num_attention_heads: H, num_key_value_heads: KV, head_dim: D } = c;
  const pos = positionsFrom(start, n);
  let x = embedding(p.embed_tokens, Tensor.from(ids, [n], "i32"));
  p.layers.forEach((L, l) => {
    const { q, k, v } = gqaProjections(c, L, rmsnorm(x, L.input_layernorm, c.rms_norm_eps), pos);
    const row = KV * D * 4;
    copyBuffer(k.buffer, 0, cache.k[l]!.buffer, start * row, n * row);
    copyBuffer(v.buffer, 0, cache.v[l]!.buffer, start * row, n * row);
    const o = Tensor.empty([1, n, H, D]);
    const lse = Tensor.empty([1, H, n]);
    attentionInto(o, lse, reshape(q, [1, n, H, D]), cache.k[l]!, cache.v[l]!, pos, {
      B: 1,
      T: n,
      Tk: start + n,
      H,
      KV,
      D,
      qOffset: start,
      scale: c.attn_scale,
      window: c.windows[l] ?? 0,
    });
    x = linear(reshape(o, [n, H * D]), L.o_proj, x);
    x = mlpBlock(L, rmsnorm(x, L.post_attention_layernorm, c.rms_norm_eps), x);
  });
  return lastLogits(c, p, x);
}

/** Logits (1, V) of the last token, recomputing the whole sequence. */
function full(c: ModelConfig, p: ModelParams, ids: number[]): Tensor {
  const T = ids.length;
  const logits = forward(c, p, Tensor.from(ids, [T], "i32"), Tensor.from(plainPositions(1, T), [T], "i32"), 1, T);
  return lastRow(logits);
}

/**
 * What a model has read so far: the tokens whose keys and values are cached, and the last sampled
 * token, which no pass has read yet (a next turn or flush() feeds it). Positions run on from there.
 */
export class DecodeState {
  /** the tokens the cache holds, in order */
  readonly ids: number[] = [];
  /** sampled, not yet read by the model */
  private unread: number[] = [];

  private constructor(
    readonly config: ModelConfig,
    private params: ModelParams,
    /** one slot; null: no cache, every step recomputes the sequence */
    private cache: SeqCache | null,
  ) {}

  /** capacity: positions to allocate at first (the cache doubles when it needs more, up to max_position_embeddings) */
  static async open(
    c: ModelConfig,
    p: ModelParams,
    o: { useCache?: boolean; capacity?: number } = {},
  ): Promise<DecodeState> {
    const cap = Math.min(c.max_position_embeddings, Math.max(1, o.capacity ?? 256));
    return new DecodeState(c, p, (o.useCache ?? true) ? openCache(c, 1, cap) : null);
  }

  /** Positions used: the cached tokens and the one sampled but unread. */
  get length(): number {
    return this.ids.length + this.unread.length;
  }

  /** Room for positions up to `n` (exclusive), copying what is cached into a larger cache when needed. */
  private reserve(n: number): void {
    const cache = this.cache;
    if (!cache || n <= cache.maxT) return;
    growCache(cache, Math.min(this.config.max_position_embeddings, Math.max(n, 2 * cache.maxT)), this.ids.length);
  }

  /** Read `ids` after what the model has read (the unread token first); the logits (1, V) after the last. */
  private read(ids: number[]): Tensor {
    const c = this.config,
      p = this.params,
      cache = this.cache;
    const all = [...this.unread, ...ids];
    const start = this.ids.length;
    this.reserve(start + all.length);
    let z: Tensor;
    if (!cache) z = full(c, p, [...this.ids, ...all]);
    else if (start === 0) z = prefill(c, p, cache, [all], [[0]]);
    else if (all.length === 1) z = decodeStep(c, p, cache, all, [0], [start]);
    else if (c.attn_type !== "mla") z = step(c, p, cache, all, start);
    else {
      // the latent prefill expands keys only for prompts that start a sequence; a later block is read
      // one token at a time through the absorbed decoding step, which attends over the whole cache
      for (let i = 0; i < all.length - 1; i++) scope(() => void decodeStep(c, p, cache, [all[i]!], [0], [start + i]));
      z = decodeStep(c, p, cache, [all[all.length - 1]!], [0], [start + all.length - 1]);
    }
    this.ids.push(...all);
    this.unread = [];
    return z;
  }

  /** Let the model read the last sampled token now, so the cache holds the whole sequence. */
  async flush(): Promise<void> {
    if (!this.unread.length) return;
    await scopeAsync(async () => {
      noGrad(() => this.read([]));
    });
  }

  /**
   * Sample up to maxNewTokens after `prompt`, which continues what the state has read (an empty
   * prompt continues from the last sampled token). The last sampled token stays unread.
   */
  async generate(prompt: number[], o: GenerateOpts): Promise<Generation> {
    const c = this.config;
    if (prompt.length === 0 && this.length === 0)
      throw new Error("generate: the prompt is empty (give at least one token, e.g. <|endoftext|>)");
    const before = this.length;
    if (before + prompt.length + o.maxNewTokens > c.max_position_embeddings)
      throw new Error(
        `generate: ${before ? `${before} tokens read before, ` : ""}prompt (${prompt.length}) + max new tokens (${o.maxNewTokens}) exceed max_position_embeddings ${c.max_position_embeddings}`,
      );
    const rng = o.rng ?? new Rng(o.seed);
    const stop = new Set(o.stop);
    const out: number[] = [],
      lps: number[] = [];
    let finish: Generation["finish"] = "length";
    const t0 = performance.now();
    for (let s = 0; s < o.maxNewTokens; s++) {
      const next = s === 0 ? prompt : [];
      const z = await scopeAsync(() => noGrad(() => this.read(next)).toArray());
      const fault = logitsFault(z, o);
      if (fault) throw new NonFiniteLogitsError(fault, s + 1);
      const id = sample(z, o, rng);
      out.push(id);
      lps.push(logprobOf(z, id));
      this.unread = [id];
      o.onToken?.(id);
      if (stop.has(id)) {
        finish = "stop";
        break;
      }
    }
    return { ids: out, logprobs: lps, finish, seconds: (performance.now() - t0) / 1000 };
  }

  dispose(): void {
    if (this.cache) disposeCache(this.cache);
    this.cache = null;
  }
}

export async function generate(c: ModelConfig, p: ModelParams, prompt: number[], o: GenerateOpts): Promise<Generation> {
  if (prompt.length === 0)
    throw new Error("generate: the prompt is empty (give at least one token, e.g. <|endoftext|>)");
  const maxT = prompt.length + o.maxNewTokens;
  if (maxT > c.max_position_embeddings)
    throw new Error(
      `generate: prompt (${prompt.length}) + max new tokens (${o.maxNewTokens}) exceed max_position_embeddings ${c.max_position_embeddings}`,
    );
  const state = await DecodeState.open(c, p, { useCache: o.useCache, capacity: maxT });
  try {
    return await state.generate(prompt, o);
  } finally {
    state.dispose();
  }
}
