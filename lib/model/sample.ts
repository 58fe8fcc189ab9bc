// Choosing the next token from logits: temperature 0 is greedy (first maximum); otherwise softmax at
// the temperature, keep the top-k tokens and the smallest set whose probability reaches top-p
// (Holtzman et al. 2019), then draw with the seeded generator.
// vocabLimit: models often pad vocab_size above the tokenizer's size (to a multiple of 64, for the
// matmuls); the padding rows are never trained, yet their logits are not -Infinity, so without the
// limit a draw (or greedy, when a padding logit happens to be largest) can return an id that no
// tokenizer can decode. Logits at and beyond the limit count as -Infinity for sampling only.
import type { Rng } from "../base/rng.ts";

export interface SampleOpts {
  temperature: number;
  topK: number; // 0 = off
  topP: number; // 1 = off
  /** never return an id >= this (the tokenizer's size); default: every logit is a candidate */
  vocabLimit?: number;
}

/** How many leading logits are candidates: the limit, when one is given and below the row's length. */
function _candidates(z: ArrayLike<number>, o: { vocabLimit?: number }): number {
  const lim = o.vocabLimit;
  if (lim === undefined) return z.length;
  // a limit of 0 would leave nothing to draw; better said here than as a silent id 0
  if (!Number.isInteger(lim) || lim < 1) throw new Error(`sample: vocabLimit must be a positive integer, got ${lim}`);
  return Math.min(lim, z.length);
}

export function argmax(z: ArrayLike<number>, n = z.length): number {
  let best = 0;
  for (let i = 1; i < n; i++) if (z[i]! > z[best]!) best = i;
  return best;
}

export type LogitsFault = "NaN" | "+Infinity" | "all -Infinity";

/**
 * Why nothing sensible can be drawn from these logits, or null when something can: a NaN or +Infinity
 * anywhere in the row (either makes the softmax, and the reported log-probs, NaN), or no finite logit
 * below the limit. One pass over a row already on the host.
 */
export function logitsFault(z: ArrayLike<number>, o: { vocabLimit?: number } = {}): LogitsFault | null {
  const n = _candidates(z, o);
  let finite = false,
    posInf = false;
  for (let i = 0; i < z.length; i++) {
    const x = z[i]!;
    if (Number.isNaN(x)) return "NaN";
    if (x === Infinity) posInf = true;
    else if (i < n && x !== -Infinity) finite = true;
  }
  return posInf ? "+Infinity" : finite ? null : "all -Infinity";
}

/**
 * log softmax(z)[i] at temperature 1 over the whole row, padding included: what the model assigns the
 * token, the same figure the trainer's log-probs compute (GRPO's importance ratio divides the two).
 */
export function logprobOf(z: ArrayLike<number>, i: number): number {
  let m = -Infinity;
  for (let k = 0; k < z.length; k++) m = Math.max(m, z[k]!);
  let s = 0;
  for (let k = 0; k < z.length; k++) s += Math.exp(z[k]! - m);
  return z[i]! - m - Math.log(s);
}

export function sample(z: ArrayLike<number>, o: SampleOpts, rng: Rng): number {
  const V = _candidates(z, o);
  if (o.temperature <= 0) return argmax(z, V);
  let idx = Array.from({ length: V }, (_, i) => i);
  if (o.topK > 0 && o.topK < V) {
    idx.sort((a, b) => z[b]! - z[a]! || a - b);
    idx = idx.slice(0, o.topK);
  }
  // the maximum comes off before the division: z / T overflows to Infinity at a tiny temperature
  let m = -Infinity;
  for (const i of idx) m = Math.max(m, z[i]!);
  let p = idx.map((i) => Math.exp((z[i]! - m) / o.temperature));
  let total = p.reduce((a, b) => a + b, 0);
  p = p.map((x) => x / total);
  if (o.topP < 1) {
    const order = p.map((_, k) => k).sort((a, b) => p[b]! - p[a]! || idx[a]! - idx[b]!);
    let acc = 0;
    const keep: number[] = [];
    for (const k of order) {
      keep.push(k);
      acc += p[k]!;
      if (acc >= o.topP) break;
    }
    idx = keep.map((k) => idx[k]!);
    p = keep.map((k) => p[k]!);
    total = p.reduce((a, b) => a + b, 0);
    p = p.map((x) => x / total);
  }
  let r = rng.next();
  let last = 0;
  for (let k = 0; k < p.length; k++) {
    if (p[k]! > 0) last = k;
    r -= p[k]!;
    if (r < 0) return idx[k]!;
  }
  // rounding left r just above the total: the last token that had any probability, never a -Infinity one
  return idx[last]!;
}
