// grpo: Group Relative Policy Optimization (Shao et al. 2024, DeepSeekMath). For each prompt, sample
// G responses with the current policy (the group decoded as one batch: generate_batch.ts), score them
// with the user's reward, and standardize within the group: A = (r - mean) / (std + 1e-4) (std with
// Bessel's correction, as TRL). Per response token, with ratio = exp(logp - logp_old):
//   loss_tok = -(min(ratio·A, clip(ratio, 1-ε, 1+ε)·A) - β·KL),  KL = exp(ref - logp) - (ref - logp) - 1
// (the k3 estimator, Schulman 2020), averaged over each response's tokens, then over the window's
// responses. logp_old is what the sampler saw. The reference starts as the stage's initial weights
// and is re-synced to the policy every sync_interval steps. The loss's gradient with respect to each
// token log-prob is computed on the host and pushed back through the model.
// Offline GRPO: shards that carry responses and rewards skip sampling (logp_old = logp).
// Data parallel: the ranks are dealt prompts, and each samples, rewards and standardizes its prompts'
// groups (a group never spans ranks). The sampling seeds are drawn in the global batch's prompt order:
// a rank skips the seeds of the prompts dealt before its own and after, so each group gets the seeds
// one process would give it and every rank's generator ends the step in the same state.
import { Tensor } from "../../tensor/tensor.ts";
import { noGrad } from "../../tensor/autograd.ts";
import { generateBatch } from "../../model/generate_batch.ts";
import { disposeParams, type ModelParams } from "../../model/params.ts";
import { readSide } from "../../data/shards.ts";
import { InputError } from "../../base/errors.ts";
import { stageReference, scoredTargets, syncInto, tokenLogprobs } from "../policy.ts";
import { StopRequested } from "../deadline.ts";
import { rewardFromCommand, rewardFromModule, type RewardFn } from "../reward.ts";
import type { ShardDataset, RowValues } from "../dataset.ts";
import type { Strategy } from "../strategy.ts";
import type { Trainer } from "../trainer.ts";
import { tokenRoles } from "../../tokenizer/roles.ts";

export function groupAdvantages(r: number[], G: number): { adv: number[]; std: number[] } {
  const adv: number[] = [],
    std: number[] = [];
  for (let g = 0; g < r.length / G; g++) {
    const x = r.slice(g * G, g * G + G);
    const mean = x.reduce((a, b) => a + b, 0) / G;
    const s = Math.sqrt(x.reduce((a, b) => a + (b - mean) ** 2, 0) / (G - 1));
    std.push(s);
    for (const v of x) adv.push((v - mean) / (s + 1e-4));
  }
  return { adv, std };
}

export interface TokenTerms {
  loss: number; // Σ over tokens of the per-token loss
  dlogp: number; // its derivative with respect to logp
  kl: number;
  clipped: boolean;
}

/** One response token's clipped-surrogate + KL loss and its derivative with respect to logp. */
export function grpoToken(logp: number, old: number, ref: number, A: number, eps: number, beta: number): TokenTerms {
  const ratio = Math.exp(logp - old);
  const unclipped = ratio * A;
  const clippedRatio = Math.min(Math.max(ratio, 1 - eps), 1 + eps);
  const clippedObj = clippedRatio * A;
  const useUnclipped = unclipped <= clippedObj;
  const kl = Math.exp(ref - logp) - (ref - logp) - 1;
  return {
    loss: -(Math.min(unclipped, clippedObj) - beta * kl),
    dlogp: -(useUnclipped ? unclipped : 0) + beta * (1 - Math.exp(ref - logp)),
    kl,
    clipped: !useUnclipped,
  };
}

/** groupSize: responses sampled per prompt (online); offline data fixes its own. */
export function grpoStrategy(data: ShardDataset, groupSize: number): Strategy {
  const offline = "responses" in data.manifest.keys;
  const G = offline ? Number(data.manifest.group_size) : groupSize;
  let ref: ModelParams | null = null;
  let reward: RewardFn | null = null;
  let closeReward = async () => {};
  let side: Record<string, unknown>[] = [];
  const keys = ["prompts", "prompt_mask", ...(offline ? ["responses", "masks", "rewards"] : [])];
  return {
    name: "grpo",
    keys,
    async init(t) {
      const c = t.cfg;
      if (!offline) {
        if (!t.tokenizer)
          throw new InputError(
            `${c.data}: grpo samples text for the reward, so it needs the tokenizer the shards were packed with (not found at ${data.manifest.tokenizer.path})`,
          );
        if (!!c.reward === !!c.reward_cmd)
          throw new InputError("grpo needs exactly one of --reward FILE.ts or --reward-cmd 'COMMAND'");
        // every reward waits at most reward_timeout and gives way at once to a stop signal
        const o = { timeoutMs: c.reward_timeout * 1000, signal: t.stop.signal };
        if (c.reward) reward = await rewardFromModule(c.reward, o);
        else {
          const r = rewardFromCommand(c.reward_cmd!, o);
          reward = r.fn;
          closeReward = r.close;
        }
        side = readSide(c.data, "train") as Record<string, unknown>[];
      }
      ref = stageReference(t);
    },
    count: (_rows, n) => n * G, // responses
    async batch(t, rows, idx, windowCount) {
      return run(t, rows, idx, windowCount);
    },
    async onStepEnd(t) {
      if (t.cfg.sync_interval > 0 && t.step % t.cfg.sync_interval === 0) syncInto(ref!, t.params);
    },
    // async: the reward command gets a moment to exit on EOF before its process group is killed
    async dispose() {
      if (ref) disposeParams(ref);
      ref = null;
      await closeReward();
    },
  };

  async function run(t: Trainer, rows: RowValues, idx: Uint32Array, windowCount: number) {
    const c = t.cfg;
    const n = idx.length;
    const Lp = t.seqLen;
    const g = G;
    const prompts: number[][] = [];
    for (let i = 0; i < n; i++) {
      const p: number[] = [];
      for (let k = 0; k < Lp; k++)
        if ((rows.prompt_mask as Uint8Array)[i * Lp + k]) p.push((rows.prompts as Int32Array)[i * Lp + k]!);
      prompts.push(p);
    }
    // responses, rewards and the sampler's log-probs, group by group
    const responses: number[][] = [],
      rewards: number[] = [],
      old: (number[] | null)[] = [];
    if (offline) {
      const R = (rows.responses as Int32Array).length / (n * G);
      for (let i = 0; i < n * G; i++) {
        const r: number[] = [];
        for (let k = 0; k < R; k++)
          if ((rows.masks as Uint8Array)[i * R + k]) r.push((rows.responses as Int32Array)[i * R + k]!);
        responses.push(r);
        rewards.push((rows.rewards as Float32Array)[i]!);
        old.push(null);
      }
    } else {
      const tok = t.tokenizer!;
      const roles = tokenRoles(tok);
      const stop = [roles.docEnd, roles.turnEnd, ...t.model.eos_token_id];
      // sampling a whole group can take long on a big model: a stop ends it between decoding steps
      const onStep = () => {
        if (t.stop.signal.aborted) throw new StopRequested(String(t.stop.signal.reason));
      };
      const skip = (k: number) => {
        for (let j = 0; j < k; j++) t.rng.nextU32();
      };
      const { offset, size } = t.microBatch;
      skip(offset * g);
      for (let i = 0; i < n; i++) {
        const promptText = tok.decode(prompts[i]!, false);
        // the group as one batch: one prefill of the prompt, its cache rows copied to the g sequences,
        // each drawing from its own generator (seeds taken in the order one-at-a-time sampling took them)
        const items = Array.from({ length: g }, () => ({ prompt: prompts[i]!, stop, seed: t.rng.nextU32() }));
        const gens = await generateBatch(t.model, t.params, items, {
          maxNewTokens: c.max_new_tokens,
          temperature: c.temperature,
          topK: 0,
          topP: c.top_p,
          vocabLimit: tok.size,
          onStep,
        });
        for (const gen of gens) {
          responses.push(gen.ids);
          old.push(gen.logprobs);
          const text = tok.decode(
            gen.ids.filter((id) => !stop.includes(id)),
            true,
          );
          rewards.push(await reward!(promptText, text, side[idx[i]!] ?? {}));
        }
      }
      skip((size - offset - n) * g);
    }
    const { adv, std } = groupAdvantages(rewards, g);
    // sequences prompt + response, right-padded; scored = response tokens
    const S = n * g;
    const L = Math.max(...responses.map((r, i) => prompts[Math.floor(i / g)]!.length + r.length), 2);
    const pad = t.data.manifest.tokenizer.pad_id;
    const seqs = new Int32Array(S * L).fill(pad),
      mask = new Uint8Array(S * L);
    responses.forEach((r, i) => {
      const p = prompts[Math.floor(i / g)]!;
      seqs.set(p, i * L);
      seqs.set(r, i * L + p.length);
      mask.fill(1, i * L + p.length, i * L + p.length + r.length);
    });
    const batch = scoredTargets(seqs, mask, S, L);
    const { counts } = batch;
    const lp = tokenLogprobs(t.model, t.params, batch);
    const lpHost = await lp.toArray();
    const refHost = await noGrad(() => tokenLogprobs(t.model, ref!, batch)).toArray();
    const dlp = new Float32Array(S * L);
    let loss = 0,
      kl = 0,
      clipped = 0,
      scored = 0;
    for (let i = 0; i < S; i++) {
      const start = prompts[Math.floor(i / g)]!.length - 1; // target index of the first response token
      let li = 0,
        ki = 0;
      for (let k = 0; k < counts[i]!; k++) {
        const at = i * L + start + k;
        const o = old[i] ? old[i]![k]! : lpHost[at]!;
        const term = grpoToken(lpHost[at]!, o, refHost[at]!, adv[i]!, c.clip_eps, c.kl_coef);
        li += term.loss;
        ki += term.kl;
        clipped += term.clipped ? 1 : 0;
        dlp[at] = term.dlogp / (counts[i]! * windowCount);
      }
      scored += counts[i]!;
      if (counts[i]) {
        loss += li / counts[i]!;
        kl += ki / counts[i]!;
      }
    }
    t.backward(lp, Tensor.from(dlp, [S * L]));
    const groups = windowCount / g;
    return {
      loss: loss / windowCount,
      tokens: S * L,
      metrics: {
        reward: rewards.reduce((a, b) => a + b, 0) / windowCount,
        reward_std: std.reduce((a, b) => a + b, 0) / groups,
        frac_reward_zero_std: std.filter((s) => s === 0).length / groups,
        kl: kl / windowCount,
        clip_ratio: scored ? (clipped / scored) * (S / windowCount) : 0,
        "completions/mean_length": responses.reduce((a, r) => a + r.length, 0) / windowCount,
      },
    };
  }
}
