// What the four training commands share: their flags (one per config key the command uses, derived
// from the schema, so a key can never be missing as a flag), the config they resolve (--config JSON,
// then flags on top; on --resume the checkpoint's config, then flags on top), and the run itself:
// the run directory's policy and lock, events to stdout, and signals. SIGINT/SIGTERM end the
// current step (a wait on a reward or a callback ends at once), save a checkpoint and exit 130/143;
// a second signal exits at once.
import type { ArgsDef } from "citty";
import { initGpu } from "../lib/gpu/index.ts";
import { num } from "../lib/io/validate.ts";
import { keysFor, TrainConfigSchema, type Strategy, type TrainKey } from "../lib/train/config.ts";
import { resolveConfig } from "../lib/train/resolve_config.ts";
import { TrainContextBuilder } from "../lib/train/context.ts";
import { RunDir } from "../lib/train/run_dir.ts";
import type { Trainer } from "../lib/train/trainer.ts";
import { StopRequested } from "../lib/train/deadline.ts";

const HELP: Record<TrainKey, string> = {
  data: "shard directory from `pack`",
  out: "run directory: checkpoints step_NNNNNN/ and metrics.jsonl",
  model: "model config JSON for a new model (vocab_size defaults to the tokenizer's)",
  init: "start from these weights (a new stage, e.g. sft after pretrain)",
  resume: "continue this checkpoint's run exactly",
  max_steps: "optimizer steps (default: --n-epoch epochs)",
  n_epoch: "epochs when --max-steps is not given",
  batch_size: "rows per micro-batch",
  accumulation_steps: "micro-batches per optimizer step",
  max_lr: "peak learning rate",
  min_rate: "final lr as a fraction of max-lr",
  warmup_steps: "linear warmup steps",
  schedule: "cosine | sgdr | wsd | constant",
  sgdr_cycle: "sgdr: steps in the first cycle (default: a third of the steps after warmup)",
  t_mult: "sgdr: each cycle this many times longer than the last",
  wsd_decay_fraction: "wsd: the fraction of steps that decay at the end",
  ckpt_interval: "checkpoint every K steps (0: only at the end)",
  keep: "checkpoints to keep",
  seed: "seed for initialization, data order and sampling",
  log_interval: "print a step line every K steps",
  eval_interval: "validation loss every K steps, when the data has a val split (0: off)",
  grad_clip: "global gradient-norm clip (0 = off)",
  weight_decay: "AdamW weight decay on matrices",
  beta1: "AdamW β1, in [0, 1)",
  beta2: "AdamW β2, in [0, 1)",
  eps: "AdamW ε",
  callback: "a TS module whose default export is a Callback (repeatable)",
  callback_timeout: "seconds a callback hook may take (0 = no limit)",
  precision:
    "f32 | mixed (f16 matmul inputs, f32 accumulation, loss scaling) | auto: mixed where the adapter has tensor cores",
  loss_scale: "initial dynamic loss scale for mixed precision",
  loss_scale_window: "good steps before the loss scale doubles",
  label_smoothing: "label smoothing for the cross-entropy",
  beta: "DPO temperature β",
  reduction: "sequence log-prob: sum or mean over response tokens",
  group_size: "responses sampled per prompt",
  max_new_tokens: "response length limit",
  temperature: "sampling temperature",
  top_p: "nucleus sampling threshold",
  clip_eps: "ratio clip ε",
  kl_coef: "KL penalty β",
  sync_interval: "re-sync the reference to the policy every K steps (0 = never)",
  reward: "TS module exporting reward(prompt, response, row)",
  reward_cmd: 'command: {"id","prompt","response","row"} lines in on stdin, one {"id","reward"} line out per request',
  reward_timeout: "seconds a reward may take per request (0 = no limit)",
};

const unwrap = (x: any): any => (x.type === "optional" || x.type === "nullable" ? unwrap(x.wrapped) : x);
const schemaOf = (k: TrainKey) => (TrainConfigSchema.entries as Record<string, any>)[k];
const isText = (k: TrainKey) => ["string", "picklist", "array"].includes(unwrap(schemaOf(k)).type);
const defaultOf = (k: TrainKey): unknown => schemaOf(k).default;
const flagOf = (k: string) => k.replace(/_/g, "-");

/** The command-line flags of a training command: one per config key it uses, plus --config and --overwrite. */
export function trainArgs(strategy: Strategy): ArgsDef {
  const args: ArgsDef = {
    config: { type: "string", description: "training config JSON (flags override it)" },
    overwrite: { type: "boolean", default: false, description: "replace an earlier run of this command in --out" },
  };
  for (const k of keysFor(strategy)) {
    const d = defaultOf(k);
    const shown = d === undefined || (Array.isArray(d) && d.length === 0) ? "" : ` (default ${d})`;
    args[flagOf(k)] = { type: "string", description: HELP[k] + shown };
  }
  return args;
}

/** Flags given on the command line, as config keys (citty leaves absent flags undefined). */
function flagsOf(args: Record<string, unknown>, strategy: Strategy): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of keysFor(strategy)) {
    const v = args[flagOf(k)];
    if (v === undefined) continue;
    if (k === "callback") out.callback = Array.isArray(v) ? v : [v];
    else out[k] = isText(k) ? v : num(v);
  }
  return out;
}

const EXIT: Record<string, number> = { SIGINT: 130, SIGTERM: 143 };

export async function runTraining(strategy: Strategy, args: Record<string, unknown>): Promise<void> {
  const cfg = resolveConfig(
    strategy,
    flagsOf(args, strategy),
    typeof args.config === "string" ? args.config : undefined,
  );
  const note = (line: string) => console.error(line);
  let trainer: Trainer | null = null;
  const onSignal = (sig: string) => () => {
    // before the run starts, or a second signal: stop now (exit handlers release the lock and kill
    // reward processes)
    if (!trainer || trainer.stopRequested) {
      console.error(`bunlm: ${sig}: stopping now, without saving`);
      process.exit(EXIT[sig]);
    }
    trainer.stopRequested = sig;
    trainer.stop.abort(sig);
    console.error(
      `bunlm: ${sig}: stopping after step ${trainer.step + 1} (or at once where it waits on a reward or a callback), then saving a checkpoint; send again to stop without saving`,
    );
  };
  const sigint = onSignal("SIGINT"),
    sigterm = onSignal("SIGTERM");
  process.on("SIGINT", sigint);
  process.on("SIGTERM", sigterm);
  const run = RunDir.open(cfg, strategy, args.overwrite === true, note);
  try {
    await initGpu();
    trainer = await new TrainContextBuilder(strategy, cfg, (line) => console.log(line)).build();
    try {
      await trainer.prepare();
    } catch (e) {
      // a signal while a reward module loads: nothing has run, nothing to save
      if (e instanceof StopRequested) process.exit(EXIT[e.signal] ?? 1);
      throw e;
    }
    run.begin(cfg.resume ? trainer.startStep : null);
    const t0 = performance.now();
    try {
      await trainer.run();
    } finally {
      await trainer.strategy.dispose?.();
    }
    const last = trainer.history[trainer.history.length - 1];
    trainer.emit({
      event: "summary",
      strategy,
      steps: trainer.step,
      epoch: trainer.epoch,
      consumed_samples: trainer.consumed,
      final_loss: last?.loss ?? null,
      seconds: +((performance.now() - t0) / 1000).toFixed(3),
      checkpoint: trainer.lastCheckpoint,
      stopped: trainer.stopReason,
    });
  } finally {
    process.off("SIGINT", sigint);
    process.off("SIGTERM", sigterm);
    run.close();
  }
  if (trainer.stopRequested) process.exit(EXIT[trainer.stopRequested]);
}
