// Perplexity and bits per byte for `eval`, over documents (text, JSONL, parquet) or a packed shard
// directory (pack seq or sft).
// Documents are scored as lm-evaluation-harness's loglikelihood_rolling does (lm_eval/utils.py
// get_rolling_token_windows with context_len 1, then make_disjoint_window): each document on its own,
// after one prefix token (the tokenizer's bos, else its eos: lm-eval's prefix_token_id), cut into
// windows of L predictions; every token is predicted exactly once, and the last window is filled up
// with earlier tokens so its predictions still see a full window. For tokens 0..9 and L = 4:
//   input  P 0 1 2 | 3 4 5 6 | 5 6 7 8
//   scored 0 1 2 3 | 4 5 6 7 |     8 9
// nanoGPT's non-overlapping windows would predict the first token of every window from nothing and
// drop a last partial window; this way the number does not depend on where the windows fall more than
// it must, and it is the number lm-eval prints for the same model (wikitext's bits_per_byte).
// A tokenizer that adds its bos itself (Llama 2, Mistral) makes lm-eval also score that bos after the
// prefix; here the document's own tokens are scored, never a bos it did not write.
// Bits per byte = total NLL in nats / (ln 2 · UTF-8 bytes of the documents).
// Shards are scored as training's validation loss is: each row's targets (sft: where loss_mask is 1)
// with the rows' position_ids; bytes are those of the scored targets, decoded (special tokens: none).
import { join } from "node:path";
import { existsSync } from "node:fs";
import { InputError } from "../base/errors.ts";
import { readJsonObject } from "../io/files.ts";
import { IGNORE_INDEX } from "../ops/cross_entropy.ts";
import type { Doc } from "../io/readers.ts";
import { addedBosId, type Tokenizer } from "../tokenizer/tokenizer.ts";
import type { ModelConfig } from "../model/config.ts";
import type { ModelParams } from "../model/params.ts";
import { readManifest } from "../data/shards.ts";
import { ShardDataset } from "./dataset.ts";
import { scoreRequests, type ScoreRequest } from "./eval_score.ts";
import { tokenContent } from "../tokenizer/special_ids.ts";

/** The special tokens scoring needs from a tokenizer. */
export interface ScoringTokens {
  /** what a document or an empty context follows (lm-eval's prefix_token_id: bos, else eos); null: none */
  prefix: number | null;
  /** the bos the tokenizer puts before every text itself (HF's add_special_tokens), else null */
  addedBos: number | null;
}

/**
 * bos and eos as tokenizer_config.json names them (bunlm's tokenizers: <|endoftext|> for both, what
 * pack puts between documents); the bos counts as added when add_bos_token is true or tokenizer.json's
 * post-processor puts a special token first (Llama 3's TemplateProcessing).
 */
export function scoringTokens(tok: Tokenizer, dir: string): ScoringTokens {
  const idOf = (k: string) => {
    const c = tokenContent(tok.config[k]);
    return c === undefined ? undefined : tok.tokenToId(c);
  };
  const bos = idOf("bos_token"),
    eos = idOf("eos_token") ?? tok.tokenToId("<|endoftext|>");
  const file = join(dir, "tokenizer.json");
  const added = addedBosId(tok, existsSync(file) ? readJsonObject(file).post_processor : null);
  return { prefix: bos ?? eos ?? null, addedBos: added };
}

/**
 * lm-eval's rolling windows of one document's tokens: each {ids, targets} is at most L long, targets
 * hold the token each position predicts (IGNORE_INDEX where it is context only). Without a prefix
 * token the first token is context only (nothing to predict it from).
 */
export function rollingWindows(tokens: number[], prefix: number | null, L: number): ScoreRequest[] {
  if (prefix === null) return tokens.length < 2 ? [] : rollingWindows(tokens.slice(1), tokens[0]!, L);
  const out: ScoreRequest[] = [];
  const n = tokens.length;
  if (n === 0) return out;
  const first = Math.min(L, n);
  out.push({ ids: [prefix, ...tokens.slice(0, first - 1)], targets: tokens.slice(0, first) });
  for (let done = first; done < n; ) {
    const k = Math.min(n - done, L),
      end = done + k;
    // input tokens[end-L-1 .. end-2] predict tokens[end-L .. end-1]; only the last k are new
    const start = end - L - 1;
    const ids = tokens.slice(start, end - 1);
    const targets = tokens.slice(start + 1, end).map((t, i) => (i >= L - k ? t : IGNORE_INDEX));
    out.push({ ids, targets });
    done = end;
  }
  return out;
}

export interface PerplexityResult {
  documents: number;
  tokens: number;
  /** Σ -log p over the scored tokens, nats */
  nll: number;
  /** UTF-8 bytes of the scored text; null when unknown (shards without a tokenizer) */
  bytes: number | null;
}

/** The JSON fields of a perplexity line. */
export function perplexityFields(r: PerplexityResult): Record<string, number | null> {
  const loss = r.tokens ? r.nll / r.tokens : Number.NaN;
  return {
    tokens: r.tokens,
    loss,
    perplexity: Math.exp(loss),
    bytes: r.bytes,
    bits_per_byte: r.bytes ? r.nll / (Math.LN2 * r.bytes) : null,
  };
}

export interface DocScore {
  source: string;
  index: number;
  tokens: number;
  nll: number;
  bytes: number;
}

export interface TextEvalOpts {
  seqLen: number;
  batchSize: number;
  /** documents to score at most (0: all) */
  limit: number;
  onDoc?: (d: DocScore) => void;
  onProgress?: (tokens: number) => void;
}

/** Perplexity of documents, each scored by rolling windows of opts.seqLen. */
export async function textPerplexity(
  c: ModelConfig,
  p: ModelParams,
  tok: Tokenizer,
  special: ScoringTokens,
  docs: AsyncIterable<Doc>,
  o: TextEvalOpts,
): Promise<PerplexityResult> {
  const res: PerplexityResult = { documents: 0, tokens: 0, nll: 0, bytes: 0 };
  let pending: { doc: DocScore; windows: ScoreRequest[] }[] = [];
  let windows = 0;
  const flush = async () => {
    const all = pending.flatMap((d) => d.windows);
    const scored = await scoreRequests(c, p, all, o.batchSize);
    let at = 0;
    for (const d of pending) {
      for (let i = 0; i < d.windows.length; i++, at++) {
        d.doc.nll -= scored[at]!.logprob;
        d.doc.tokens += scored[at]!.tokens;
      }
      res.nll += d.doc.nll;
      res.tokens += d.doc.tokens;
      o.onDoc?.(d.doc);
    }
    o.onProgress?.(res.tokens);
    pending = [];
    windows = 0;
  };
  for await (const d of docs) {
    if (o.limit && res.documents >= o.limit) break;
    let ids = tok.encode(d.text);
    // the prefix stands where a tokenizer that adds a bos would have put it
    if (special.addedBos !== null && ids[0] === special.addedBos) ids = ids.slice(1);
    const w = rollingWindows(ids, special.prefix, o.seqLen);
    const bytes = Buffer.byteLength(d.text);
    res.documents++;
    res.bytes! += bytes;
    pending.push({ doc: { source: d.source, index: d.index, tokens: 0, nll: 0, bytes }, windows: w });
    windows += w.length;
    // whole batches, and a bound on what waits (a long document's windows all wait for one call)
    if (windows >= 4 * o.batchSize) await flush();
  }
  if (pending.length) await flush();
  return res;
}

export interface ShardEvalOpts {
  /** auto: val when it has rows, else train */
  split: "auto" | "train" | "val";
  batchSize: number;
  /** rows to score at most (0: all) */
  limit: number;
  /** decodes the scored targets for the byte count; null: bytes unknown */
  tok: Tokenizer | null;
  onProgress?: (rows: number, total: number) => void;
}

/** Perplexity over a pack seq or sft shard directory: the loss training reports for that split. */
export async function shardPerplexity(
  c: ModelConfig,
  p: ModelParams,
  dir: string,
  o: ShardEvalOpts,
): Promise<PerplexityResult & { rows: number; seqLen: number; split: "train" | "val" }> {
  const split = o.split === "auto" ? (readManifest(dir).rows.val > 0 ? "val" : "train") : o.split;
  const data = new ShardDataset(dir, split);
  try {
    const m = data.manifest;
    if (m.type !== "seq" && m.type !== "sft")
      throw new InputError(
        `--data ${dir}: holds ${m.type} shards; eval scores \`pack seq\` or \`pack sft\` shards (their next-token targets)`,
      );
    if (data.rows === 0)
      throw new InputError(
        `--data ${dir}: the ${split} split has no rows${split === "val" ? "; give --split train" : ""}`,
      );
    if (m.tokenizer.vocab_size > c.vocab_size)
      throw new InputError(
        `--data ${dir}: packed with a tokenizer of ${m.tokenizer.vocab_size} tokens, the model has ${c.vocab_size}: they do not belong together`,
      );
    if (m.seq_len > c.max_position_embeddings)
      throw new InputError(
        `--data ${dir}: rows of ${m.seq_len} tokens, longer than the model's max_position_embeddings ${c.max_position_embeddings}`,
      );
    if (o.tok && o.tok.hash !== m.tokenizer.hash)
      throw new InputError(
        `--data ${dir}: packed with another tokenizer (hash ${m.tokenizer.hash}) than the model's (${o.tok.hash}); the ids would mean other tokens`,
      );
    const L = m.seq_len;
    const masked = m.type === "sft";
    const keys = [
      "input_ids",
      "target_ids",
      ...("position_ids" in m.keys ? ["position_ids"] : []),
      ...(masked ? ["loss_mask"] : []),
    ];
    const total = o.limit ? Math.min(o.limit, data.rows) : data.rows;
    const res = { documents: 0, rows: total, seqLen: L, split, tokens: 0, nll: 0, bytes: o.tok ? 0 : null };
    const step = Math.max(o.batchSize, 1);
    for (let r0 = 0; r0 < total; r0 += step) {
      const idx = Array.from({ length: Math.min(step, total - r0) }, (_, i) => r0 + i);
      const rows = data.batch(idx, keys);
      const reqs: ScoreRequest[] = idx.map((_, i) => {
        const targets = Int32Array.from((rows.target_ids as Int32Array).subarray(i * L, (i + 1) * L));
        if (masked) {
          const mask = (rows.loss_mask as Uint8Array).subarray(i * L, (i + 1) * L);
          for (let t = 0; t < L; t++) if (!mask[t]) targets[t] = IGNORE_INDEX;
        }
        const pos = rows.position_ids ? (rows.position_ids as Int32Array).subarray(i * L, (i + 1) * L) : undefined;
        return { ids: (rows.input_ids as Int32Array).subarray(i * L, (i + 1) * L), targets, pos };
      });
      for (const [i, s] of (await scoreRequests(c, p, reqs, step)).entries()) {
        res.nll -= s.logprob;
        res.tokens += s.tokens;
        if (o.tok) res.bytes = res.bytes! + scoredBytes(o.tok, reqs[i]!.targets);
      }
      o.onProgress?.(r0 + idx.length, total);
    }
    return res;
  } finally {
    data.close();
  }
}

/** UTF-8 bytes of the scored targets, decoded run by run (a run of consecutive scored positions is contiguous text). */
function scoredBytes(tok: Tokenizer, targets: ArrayLike<number>): number {
  let n = 0;
  let run: number[] = [];
  for (let t = 0; t <= targets.length; t++) {
    const x = t < targets.length ? targets[t]! : IGNORE_INDEX;
    if (x !== IGNORE_INDEX) run.push(x);
    else if (run.length) {
      n += tok.decodeBytes(run, true).length;
      run = [];
    }
  }
  return n;
}
