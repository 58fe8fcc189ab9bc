// Batched generation: B sequences decoded together, one forward of B rows per step over one batched
// KV cache (batch_decode.ts: a slot per sequence, ragged, no padding). Prompts that are the same (a
// GRPO group) are prefilled once and their cache rows copied into each of their slots.
// Each sequence samples with its own generator (its seed, or one given), its own stop ids, and stops
// on its own: a stop id or maxNewTokens ends it and its row leaves the next step's batch (its slot
// stays, unread); the batch ends when every sequence has. Since every op of a step works row by row
// with the same arithmetic whatever the batch holds, a sequence's logits, and so its tokens at any
// temperature and its log-probs, are those of generating it alone (generate.ts).
import { scopeAsync } from "../tensor/scope.ts";
import { noGrad } from "../tensor/autograd.ts";
import { Rng } from "../base/rng.ts";
import { decodeStep, disposeCache, openCache, prefill } from "./batch_decode.ts";
import { NonFiniteLogitsError, type Generation } from "./generate.ts";
import { sample, logprobOf, logitsFault, type SampleOpts } from "./sample.ts";
import type { ModelConfig } from "./config.ts";
import type { ModelParams } from "./params.ts";

/** One sequence of a batch: its prompt, the ids that end it, and its generator (rng, else a new one from seed). */
export interface BatchItem {
  prompt: number[];
  stop: number[];
  seed?: number;
  rng?: Rng;
}

export interface BatchOpts extends SampleOpts {
  maxNewTokens: number;
  /** called before each forward; what it throws ends the batch (a training run's stop request) */
  onStep?: () => void;
}

/**
 * Generate after each item's prompt, all items as one batch. Generation i's `seconds` run from the
 * batch's start to the step that ended sequence i. A non-finite row throws NonFiniteLogitsError with
 * the item's index as `sequence`.
 */
export async function generateBatch(
  c: ModelConfig,
  p: ModelParams,
  items: BatchItem[],
  o: BatchOpts,
): Promise<Generation[]> {
  for (const it of items) {
    if (!it.prompt.length)
      throw new Error("generate: the prompt is empty (give at least one token, e.g. <|endoftext|>)");
    if (it.prompt.length + o.maxNewTokens > c.max_position_embeddings)
      throw new Error(
        `generate: prompt (${it.prompt.length}) + max new tokens (${o.maxNewTokens}) exceed max_position_embeddings ${c.max_position_embeddings}`,
      );
  }
  if (!items.length || o.maxNewTokens < 1)
    return items.map(() => ({ ids: [], logprobs: [], finish: "length", seconds: 0 }));
  // prompts that are the same share one prefill
  const uniq = new Map<string, number>(),
    prompts: number[][] = [],
    slotsOf: number[][] = [],
    promptOf: number[] = [];
  items.forEach((it, i) => {
    const key = it.prompt.join(",");
    let u = uniq.get(key);
    if (u === undefined) {
      uniq.set(key, (u = prompts.length));
      prompts.push(it.prompt);
      slotsOf.push([]);
    }
    slotsOf[u]!.push(i);
    promptOf.push(u);
  });
  const maxT = Math.max(...items.map((it) => it.prompt.length)) + o.maxNewTokens;
  const cache = openCache(c, items.length, maxT);
  const rngs = items.map((it) => it.rng ?? new Rng(it.seed ?? 0));
  const stops = items.map((it) => new Set(it.stop));
  const out: Generation[] = items.map(() => ({ ids: [], logprobs: [], finish: "length", seconds: 0 }));
  const t0 = performance.now();
  try {
    o.onStep?.();
    const first = await scopeAsync(() => noGrad(() => prefill(c, p, cache, prompts, slotsOf)).toArray());
    const V = first.length / prompts.length;
    let active = items.map((_, i) => i);
    // sample each active sequence's next token from its row of z: rowOf(sequence, place in active)
    const take = (z: Float32Array, rowOf: (i: number, r: number) => number) => {
      const next: number[] = [];
      for (const [r, i] of active.entries()) {
        const row = z.subarray(rowOf(i, r) * V, (rowOf(i, r) + 1) * V);
        const g = out[i]!;
        const fault = logitsFault(row, o);
        if (fault) throw new NonFiniteLogitsError(fault, g.ids.length + 1, i);
        const id = sample(row, o, rngs[i]!);
        g.ids.push(id);
        g.logprobs.push(logprobOf(row, id));
        if (stops[i]!.has(id)) g.finish = "stop";
        if (g.finish === "stop" || g.ids.length === o.maxNewTokens) g.seconds = (performance.now() - t0) / 1000;
        else next.push(i);
      }
      active = next;
    };
    take(first as Float32Array, (i) => promptOf[i]!);
    while (active.length) {
      o.onStep?.();
      const rows = active;
      const z = await scopeAsync(() =>
        noGrad(() =>
          decodeStep(
            c,
            p,
            cache,
            rows.map((i) => out[i]!.ids.at(-1)!),
            rows,
            rows.map((i) => items[i]!.prompt.length + out[i]!.ids.length - 1),
          ),
        ).toArray(),
      );
      take(z as Float32Array, (_, r) => r);
    }
  } finally {
    disposeCache(cache);
  }
  return out;
}
