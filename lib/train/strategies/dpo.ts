// dpo: Direct Preference Optimization (Rafailov et al. 2023) against a frozen reference — the
// weights the stage started from (--init, or the new model's initialization), reloaded on resume.
//   π_c, π_r: log p(response | prompt) of chosen and rejected under the policy (sum over response
//   tokens, or their mean with reduction "mean"); ρ_c, ρ_r the same under the reference;
//   z = β((π_c - ρ_c) - (π_r - ρ_r)),  loss = -log σ(z), averaged over the pairs of the window.
// The policy scores chosen and rejected in one batch of 2n rows; the loss's gradient with respect to
// the 2n sequence log-probs is computed on the host (2n numbers) and pushed back through the model.
import { Tensor } from "../../tensor/tensor.ts";
import { noGrad } from "../../tensor/autograd.ts";
import { disposeParams, type ModelParams } from "../../model/params.ts";
import { stageReference, scoredTargets, sequenceLogprobs } from "../policy.ts";
import type { RowValues } from "../dataset.ts";
import type { Strategy } from "../strategy.ts";
import type { Trainer } from "../trainer.ts";

const softplus = (x: number) => (x > 30 ? x : Math.log1p(Math.exp(x)));
const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

export interface DpoTerms {
  loss: number[];
  dz: number[]; // dloss/dz per pair
  rc: number[];
  rr: number[];
}

/** The DPO loss and its derivative per pair, from policy and reference log-probs. */
export function dpoTerms(pc: number[], pr: number[], rc: number[], rr: number[], beta: number): DpoTerms {
  const out: DpoTerms = { loss: [], dz: [], rc: [], rr: [] };
  for (let i = 0; i < pc.length; i++) {
    const a = beta * (pc[i]! - rc[i]!),
      b = beta * (pr[i]! - rr[i]!);
    const z = a - b;
    out.loss.push(softplus(-z));
    out.dz.push(-sigmoid(-z));
    out.rc.push(a);
    out.rr.push(b);
  }
  return out;
}

export function dpoStrategy(): Strategy {
  let ref: ModelParams | null = null;
  const score = (t: Trainer, rows: RowValues, n: number) => {
    const L = t.seqLen;
    const seqs = new Int32Array(2 * n * L),
      mask = new Uint8Array(2 * n * L);
    seqs.set(rows.chosen as Int32Array);
    seqs.set(rows.rejected as Int32Array, n * L);
    mask.set(rows.chosen_mask as Uint8Array);
    mask.set(rows.rejected_mask as Uint8Array, n * L);
    const scored = scoredTargets(seqs, mask, 2 * n, L);
    const scale = scored.counts.map((k) => (t.cfg.reduction === "mean" ? 1 / Math.max(k, 1) : 1));
    return { ...scored, scale };
  };
  const refLogprobs = async (t: Trainer, s: ReturnType<typeof score>) =>
    Array.from(await noGrad(() => sequenceLogprobs(t.model, ref!, s)).toArray(), (x, i) => x * s.scale[i]!);
  return {
    name: "dpo",
    keys: ["chosen", "rejected", "chosen_mask", "rejected_mask"],
    async init(t) {
      // the reference is the stage's starting point, also when resuming mid-stage
      ref = stageReference(t);
    },
    count: (_rows, n) => n,
    async batch(t, rows, idx, windowCount) {
      const n = idx.length;
      const s = score(t, rows, n);
      const sums = sequenceLogprobs(t.model, t.params, s);
      const pol = Array.from(await sums.toArray(), (x, i) => x * s.scale[i]!);
      const rf = await refLogprobs(t, s);
      const d = dpoTerms(pol.slice(0, n), pol.slice(n), rf.slice(0, n), rf.slice(n), t.cfg.beta);
      const dsums = new Float32Array(2 * n);
      for (let i = 0; i < n; i++) {
        dsums[i] = (d.dz[i]! * t.cfg.beta * s.scale[i]!) / windowCount;
        dsums[n + i] = (-d.dz[i]! * t.cfg.beta * s.scale[n + i]!) / windowCount;
      }
      t.backward(sums, Tensor.from(dsums, [2 * n]));
      const sum = (a: number[]) => a.reduce((x, y) => x + y, 0);
      return {
        loss: sum(d.loss) / windowCount,
        tokens: 2 * n * s.L,
        metrics: {
          "rewards/chosen": sum(d.rc) / windowCount,
          "rewards/rejected": sum(d.rr) / windowCount,
          "rewards/accuracies": d.rc.filter((x, i) => x > d.rr[i]!).length / windowCount,
          "rewards/margins": (sum(d.rc) - sum(d.rr)) / windowCount,
        },
      };
    },
    async evalBatch(t, rows, n) {
      const s = score(t, rows, n);
      const pol = Array.from(
        await noGrad(() => sequenceLogprobs(t.model, t.params, s)).toArray(),
        (x, i) => x * s.scale[i]!,
      );
      const rf = await refLogprobs(t, s);
      const d = dpoTerms(pol.slice(0, n), pol.slice(n), rf.slice(0, n), rf.slice(n), t.cfg.beta);
      return { loss: d.loss.reduce((a, b) => a + b, 0), count: n };
    },
    dispose() {
      if (ref) disposeParams(ref);
    },
  };
}
