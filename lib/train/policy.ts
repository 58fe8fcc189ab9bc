// Helpers the preference and RL strategies share: per-sequence log-probabilities of chosen tokens
// under a model, and a frozen copy of a model's weights (the reference; with LoRA, the base itself).
import { Tensor } from "../tensor/tensor.ts";
import { keep } from "../tensor/scope.ts";
import { copyBuffer } from "../gpu/index.ts";
import { reshape } from "../ops/shape.ts";
import { sumRows } from "../ops/index.ts";
import { logprobs, IGNORE_INDEX } from "../ops/cross_entropy.ts";
import { forward, plainPositions } from "../model/transformer.ts";
import { fromNamed, initParams, namedParams, type ModelParams } from "../model/params.ts";
import { loadModel } from "../model/checkpoint.ts";
import { baseView } from "../model/lora.ts";
import type { ModelConfig } from "../model/config.ts";
import type { FileSum } from "../io/checksum.ts";
import { verifyFile } from "../io/files.ts";
import { join } from "node:path";

/** R sequences of length L with the targets to score: token t+1 where it is a response token, else ignored. */
export interface Scored {
  seqs: Int32Array; // (R·L)
  targets: Int32Array; // (R·L)
  /** scored tokens per row */
  counts: number[];
  R: number;
  L: number;
}

/** Targets for scoring: target t is token t+1 when mask[t+1] is 1 (a response token), else ignored. */
export function scoredTargets(seqs: Int32Array, mask: ArrayLike<number>, R: number, L: number): Scored {
  const targets = new Int32Array(R * L).fill(IGNORE_INDEX);
  const counts = new Array(R).fill(0);
  for (let r = 0; r < R; r++)
    for (let t = 0; t + 1 < L; t++)
      if (mask[r * L + t + 1]) {
        targets[r * L + t] = seqs[r * L + t + 1]!;
        counts[r]++;
      }
  return { seqs, targets, counts, R, L };
}

/** Per-token log-probs (R·L; 0 where not scored) of the scored tokens. */
export function tokenLogprobs(c: ModelConfig, p: ModelParams, s: Scored): Tensor {
  const n = s.R * s.L;
  const logits = forward(
    c,
    p,
    Tensor.from(s.seqs, [n], "i32"),
    Tensor.from(plainPositions(s.R, s.L), [n], "i32"),
    s.R,
    s.L,
  );
  return logprobs(logits, Tensor.from(s.targets, [n], "i32"));
}

/** Σ over each row's scored tokens: (R). */
export function sequenceLogprobs(c: ModelConfig, p: ModelParams, s: Scored): Tensor {
  return sumRows(reshape(tokenLogprobs(c, p, s), [s.R, s.L]));
}

/** A frozen copy of the weights (no gradients), outliving scopes. */
export function frozenCopy(c: ModelConfig, p: ModelParams): ModelParams {
  const src = namedParams(p);
  return fromNamed(c, (name) => {
    const s = src.get(name)!;
    const t = keep(Tensor.empty(s.shape));
    copyBuffer(s.buffer, 0, t.buffer, 0, s.bytes);
    return t;
  });
}

/** Copy the current weights into an existing frozen copy (GRPO's reference re-sync). */
export function syncInto(dst: ModelParams, src: ModelParams): void {
  const d = namedParams(dst);
  // LoRA's reference is a view of the frozen base itself (nothing to copy: it stays the base)
  for (const [name, s] of namedParams(src))
    if (d.get(name)!.storage !== s.storage) copyBuffer(s.buffer, 0, d.get(name)!.buffer, 0, s.bytes);
}

/**
 * The frozen reference of a DPO or GRPO stage: the weights the stage started from — its --init
 * checkpoint (also after a resume), or the seeded initialization of a new model when resuming a run
 * that had none — else a copy of the current weights. Loaded weights serve as they are (no copy).
 */
export function stageReference(t: {
  model: ModelConfig;
  params: ModelParams;
  stageInit: string | null;
  initModel: FileSum | null;
  cfg: { resume?: string; seed: number; lora_rank?: number };
}): ModelParams {
  // LoRA: the stage began at its base, which is the policy without its adapters: views of the same
  // buffers carry no adapter, so the reference costs no second copy of the model
  if (t.cfg.lora_rank !== undefined) return baseView(t.params);
  // on a resume, the reference must still be the weights the stage began from
  if (t.stageInit && t.initModel && t.cfg.resume)
    verifyFile(join(t.stageInit, "model.safetensors"), t.initModel, join(t.cfg.resume, "meta.json"));
  const own = t.stageInit ? loadModel(t.stageInit).params : t.cfg.resume ? initParams(t.model, t.cfg.seed) : null;
  if (!own) return frozenCopy(t.model, t.params);
  for (const p of namedParams(own).values()) p.requiresGrad = false;
  return own;
}
