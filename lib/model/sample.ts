// Choosing the next token from logits: temperature 0 is greedy (first maximum); otherwise softmax at
// the temperature, keep the top-k tokens and the smallest set whose probability reaches top-p
// (Holtzman et al. 2019), then draw with the seeded generator.
import type { Rng } from "../data/rng.ts";

export interface SampleOpts {
  temperature: number;
  topK: number; // 0 = off
  topP: number; // 1 = off
}

export function argmax(z: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < z.length; i++) if (z[i]! > z[best]!) best = i;
  return best;
}

/** log softmax(z)[i] at temperature 1: what the model assigns the token. */
export function logprobOf(z: ArrayLike<number>, i: number): number {
  let m = -Infinity;
  for (let k = 0; k < z.length; k++) m = Math.max(m, z[k]!);
  let s = 0;
  for (let k = 0; k < z.length; k++) s += Math.exp(z[k]! - m);
  return z[i]! - m - Math.log(s);
}

export function sample(z: ArrayLike<number>, o: SampleOpts, rng: Rng): number {
  if (o.temperature <= 0) return argmax(z);
  const V = z.length;
  let idx = Array.from({ length: V }, (_, i) => i);
  if (o.topK > 0 && o.topK < V) {
    idx.sort((a, b) => z[b]! - z[a]! || a - b);
    idx = idx.slice(0, o.topK);
  }
  let m = -Infinity;
  for (const i of idx) m = Math.max(m, z[i]! / o.temperature);
  let p = idx.map((i) => Math.exp(z[i]! / o.temperature - m));
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
  for (let k = 0; k < p.length; k++) {
    r -= p[k]!;
    if (r < 0) return idx[k]!;
  }
  return idx[idx.length - 1]!;
}
