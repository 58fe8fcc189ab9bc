// Autoregressive generation with a KV cache: the prompt goes through the model once (prefill), its
// keys and values stay in per-layer caches, and each new token costs one single-token pass that
// attends over the cache. Without the cache (useCache: false) every step recomputes the whole
// sequence — the reference the cache must reproduce token for token.
// Each step's logits are checked on the host before sampling: a model whose weights are finite but
// overflow (or are otherwise broken) would otherwise yield argmax-of-NaN ids, 0 after 0, that look
// like output. The check is one pass over a row the sampler reads anyway.
import { Tensor } from "../tensor/tensor.ts";
import { keep, scopeAsync } from "../tensor/scope.ts";
import { noGrad } from "../tensor/autograd.ts";
import { copyBuffer } from "../gpu/index.ts";
import { add } from "../ops/index.ts";
import { reshape } from "../ops/shape.ts";
import { rmsnorm } from "../ops/rmsnorm.ts";
import { rope } from "../ops/rope.ts";
import { attentionInto } from "../ops/attention.ts";
import { embedding } from "../ops/embedding.ts";
import { Rng } from "../base/rng.ts";
import { forward, lastLogits, lastRow, linear, mlpBlock, plainPositions, positionsFrom } from "./transformer.ts";
import { sample, logprobOf, logitsFault, type LogitsFault, type SampleOpts } from "./sample.ts";
import { newLatentCache, latentStep, disposeLatentCache } from "./latent_cache.ts";
import type { ModelConfig } from "./config.ts";
import type { ModelParams } from "./params.ts";

export interface GenerateOpts extends SampleOpts {
  maxNewTokens: number;
  seed: number;
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

interface Cache {
  k: Tensor[]; // per layer (1, maxT, KV, D)
  v: Tensor[];
  maxT: number;
}

function newCache(c: ModelConfig, maxT: number): Cache {
  const shape = [1, maxT, c.num_key_value_heads, c.head_dim];
  const k = [],
    v = [];
  for (let l = 0; l < c.num_hidden_layers; l++) {
    k.push(keep(Tensor.empty(shape)));
    v.push(keep(Tensor.empty(shape)));
  }
  return { k, v, maxT };
}

/** Logits (1, V) of the last of `ids`, which sit at positions start..start+n-1, extending the cache. */
function step(c: ModelConfig, p: ModelParams, cache: Cache, ids: number[], start: number): Tensor {
  const n = ids.length;
  const { num_attention_heads: H, num_key_value_heads: KV, head_dim: D } = c;
  const pos = positionsFrom(start, n);
  let x = embedding(p.embed_tokens, Tensor.from(ids, [n], "i32"));
  p.layers.forEach((L, l) => {
    const h = rmsnorm(x, L.input_layernorm, c.rms_norm_eps);
    const q = rope(reshape(linear(h, L.q_proj!), [n, H, D]), pos, c.rope_theta);
    const k = rope(reshape(linear(h, L.k_proj!), [n, KV, D]), pos, c.rope_theta);
    const v = linear(h, L.v_proj!);
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
      scale: 1 / Math.sqrt(D),
    });
    x = add(x, linear(reshape(o, [n, H * D]), L.o_proj));
    x = add(x, mlpBlock(L, rmsnorm(x, L.post_attention_layernorm, c.rms_norm_eps)));
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
 * logits(seq, s): the (1, V) logits after `seq` at step s (s = 0: seq is the prompt), and how to free
 * what the steps kept. One sampling loop serves every cache.
 */
interface Decoder {
  logits: (seq: number[], s: number) => Tensor;
  dispose: () => void;
}

export async function generate(c: ModelConfig, p: ModelParams, prompt: number[], o: GenerateOpts): Promise<Generation> {
  if (prompt.length === 0)
    throw new Error("generate: the prompt is empty (give at least one token, e.g. <|endoftext|>)");
  const maxT = prompt.length + o.maxNewTokens;
  if (maxT > c.max_position_embeddings)
    throw new Error(
      `generate: prompt (${prompt.length}) + max new tokens (${o.maxNewTokens}) exceed max_position_embeddings ${c.max_position_embeddings}`,
    );
  let dec: Decoder;
  if (!(o.useCache ?? true)) dec = { logits: (seq) => full(c, p, seq), dispose: () => {} };
  else if (c.attn_type === "mla") {
    const cache = await newLatentCache(c, p, maxT);
    dec = {
      logits: (seq, s) =>
        s === 0 ? latentStep(c, p, cache, seq, 0) : latentStep(c, p, cache, [seq[seq.length - 1]!], seq.length - 1),
      dispose: () => disposeLatentCache(cache),
    };
  } else {
    const cache = newCache(c, maxT);
    dec = {
      logits: (seq, s) =>
        s === 0 ? step(c, p, cache, seq, 0) : step(c, p, cache, [seq[seq.length - 1]!], seq.length - 1),
      dispose: () => {
        for (const t of [...cache.k, ...cache.v]) t.dispose();
      },
    };
  }
  const rng = new Rng(o.seed);
  const stop = new Set(o.stop);
  const seq = [...prompt];
  const out: number[] = [],
    lps: number[] = [];
  let finish: Generation["finish"] = "length";
  const t0 = performance.now();
  try {
    for (let s = 0; s < o.maxNewTokens; s++) {
      const z = await scopeAsync(() => noGrad(() => dec.logits(seq, s)).toArray());
      const fault = logitsFault(z, o);
      if (fault) throw new NonFiniteLogitsError(fault, s + 1);
      const id = sample(z, o, rng);
      out.push(id);
      lps.push(logprobOf(z, id));
      seq.push(id);
      o.onToken?.(id);
      if (stop.has(id)) {
        finish = "stop";
        break;
      }
    }
  } finally {
    dec.dispose();
  }
  return { ids: out, logprobs: lps, finish, seconds: (performance.now() - t0) / 1000 };
}
