// What the four training commands share: their flags (same shape for all), the config they resolve
// (--config JSON, then flags on top; on --resume the checkpoint's config, then flags on top), and the
// run itself with signal handling: SIGINT/SIGTERM finish the current step, save a checkpoint and exit
// 130/143.
import { readFileSync } from "node:fs";
import type { ArgsDef } from "citty";
import { initGpu } from "../gpu/index.ts";
import { InputError } from "../io/errors.ts";
import { num } from "../io/validate.ts";
import { parseTrainConfig, TrainConfigSchema, type TrainConfig } from "./config.ts";
import { readMeta } from "./checkpoint.ts";
import { TrainContextBuilder, type Kind } from "./context.ts";

export const commonArgs = {
  data: { type: "string", description: "shard directory from `pack`" },
  out: { type: "string", description: "run directory: checkpoints step_NNNNNN/ and metrics.jsonl" },
  config: { type: "string", description: "training config JSON (flags override it)" },
  model: { type: "string", description: "model config JSON for a new model (vocab_size defaults to the tokenizer's)" },
  init: { type: "string", description: "start from these weights (a new stage, e.g. sft after pretrain)" },
  resume: { type: "string", description: "continue this checkpoint's run exactly" },
  "max-steps": { type: "string", description: "optimizer steps (default: --n-epoch epochs)" },
  "n-epoch": { type: "string", description: "epochs when --max-steps is not given (1)" },
  "batch-size": { type: "string", description: "rows per micro-batch (8)" },
  "accumulation-steps": { type: "string", description: "micro-batches per optimizer step (1)" },
  "max-lr": { type: "string", description: "peak learning rate (3e-4)" },
  "min-rate": { type: "string", description: "final lr as a fraction of max-lr (0.1)" },
  "warmup-steps": { type: "string", description: "linear warmup steps (0)" },
  schedule: { type: "string", description: "cosine | sgdr | wsd | constant (cosine)" },
  "ckpt-interval": { type: "string", description: "checkpoint every K steps (0: only at the end)" },
  keep: { type: "string", description: "checkpoints to keep (3)" },
  seed: { type: "string", description: "seed for initialization, data order and sampling (0)" },
  "log-interval": { type: "string", description: "print a step line every K steps (1)" },
  "eval-interval": { type: "string", description: "validation loss every K steps, when the data has a val split (0: off)" },
  "grad-clip": { type: "string", description: "global gradient-norm clip (1.0; 0 = off)" },
  "weight-decay": { type: "string", description: "AdamW weight decay on matrices (0.1)" },
  callback: { type: "string", description: "a TS module whose default export is a Callback (repeatable)" },
  precision: { type: "string", description: "f32 | mixed (f16 matmul inputs, f32 accumulation, loss scaling) | auto: mixed where the adapter has tensor cores (auto)" },
  "loss-scale": { type: "string", description: "initial dynamic loss scale for mixed precision (65536)" },
} satisfies ArgsDef;

// Every config key is also a flag, `max_lr` as `--max-lr`; string-typed keys stay strings, the rest
// go through num() for the schema to check.
const unwrap = (x: any): any => (x.type === "optional" || x.type === "nullable" ? unwrap(x.wrapped) : x);
const FLAGS = Object.entries<any>(TrainConfigSchema.entries)
  .filter(([key]) => key !== "callback")
  .map(([key, schema]) => ({ key, flag: key.replace(/_/g, "-"), text: ["string", "picklist"].includes(unwrap(schema).type) }));

/** Flags given on the command line, as config keys (citty leaves absent flags undefined). */
function flagsOf(args: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const { key, flag, text } of FLAGS) {
    const v = args[flag];
    if (v === undefined) continue;
    out[key] = text ? v : num(v);
  }
  const cb = args.callback;
  if (cb !== undefined) out.callback = Array.isArray(cb) ? cb : [cb];
  return out;
}

export function resolveConfig(args: Record<string, unknown>): TrainConfig {
  let base: Record<string, unknown> = {};
  if (typeof args.config === "string") {
    try {
      base = JSON.parse(readFileSync(args.config, "utf8"));
    } catch (e: any) {
      throw new InputError(`${args.config}: ${e.code === "ENOENT" ? "no such file" : `not valid JSON (${e.message})`}`);
    }
  }
  const flags = flagsOf(args);
  const resume = (flags.resume ?? base.resume) as string | undefined;
  if (resume) {
    // the run continues as it was configured; flags given now (e.g. more --max-steps) still win
    const saved = { ...readMeta(resume).config };
    delete saved.init;
    delete saved.resume;
    return parseTrainConfig({ ...saved, ...base, ...flags, resume });
  }
  return parseTrainConfig({ ...base, ...flags });
}

export async function runTraining(kind: Kind, args: Record<string, unknown>): Promise<void> {
  const cfg = resolveConfig(args);
  await initGpu();
  const trainer = await new TrainContextBuilder(kind, cfg).build();
  const t0 = performance.now();
  const onSignal = (sig: string) => () => {
    if (trainer.stopRequested) process.exit(sig === "SIGINT" ? 130 : 143); // a second signal: stop now
    trainer.stopRequested = sig;
    console.error(`bunlm: ${sig}: finishing step ${trainer.step + 1}, then saving a checkpoint (send again to stop at once)`);
  };
  const sigint = onSignal("SIGINT"), sigterm = onSignal("SIGTERM");
  process.on("SIGINT", sigint);
  process.on("SIGTERM", sigterm);
  try {
    await trainer.run();
  } finally {
    process.off("SIGINT", sigint);
    process.off("SIGTERM", sigterm);
    trainer.strategy.dispose?.();
  }
  const last = trainer.history[trainer.history.length - 1];
  trainer.emit({
    event: "summary", strategy: kind, steps: trainer.step, epoch: trainer.epoch, consumed_samples: trainer.consumed,
    final_loss: last?.loss ?? null, seconds: +((performance.now() - t0) / 1000).toFixed(3), checkpoint: trainer.lastCheckpoint, stopped: trainer.stopReason,
  });
  if (trainer.stopRequested) process.exit(trainer.stopRequested === "SIGINT" ? 130 : 143);
}
