// What the four training commands share: their flags (one per config key the command uses, derived
// from the schema, so a key can never be missing as a flag), the config they resolve (--config JSON,
// then flags on top; on --resume the checkpoint's config, then flags on top), and the run itself:
// the run directory's policy and lock, events to stdout, and signals. SIGINT/SIGTERM end the
// current step (a wait on a reward or a callback ends at once), save a checkpoint and exit 130/143;
// a second signal exits at once.
import type { ArgsDef } from "citty";
import { initGpu } from "../gpu/index.ts";
import { num } from "../io/validate.ts";
import { readJsonObject } from "../io/files.ts";
import { checkKeys, COMMAND, keysFor, ONLY, parseConflicts, parseTrainConfig, TrainConfigSchema, type Strategy, type TrainConfig, type TrainKey } from "./config.ts";
import { existsSync } from "node:fs";
import { join } from "node:path";
import * as v from "valibot";
import { readMeta } from "./checkpoint.ts";
import { InputError } from "../io/errors.ts";
import { fileSum } from "../io/files.ts";
import { TrainContextBuilder } from "./context.ts";
import { RunDir } from "./run_dir.ts";
import type { Trainer } from "./trainer.ts";
import { StopRequested } from "./deadline.ts";

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
  precision: "f32 | mixed (f16 matmul inputs, f32 accumulation, loss scaling) | auto: mixed where the adapter has tensor cores",
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

export function resolveConfig(strategy: Strategy, args: Record<string, unknown>): TrainConfig {
  let base: Record<string, unknown> = {};
  if (typeof args.config === "string") {
    base = readJsonObject(args.config);
    checkKeys(base, strategy, `--config ${args.config}`);
  }
  const flags = flagsOf(args, strategy);
  const resume = (flags.resume ?? base.resume) as string | undefined;
  // conflicts first: they say more than whatever reading the checkpoint would find
  parseConflicts({ ...base, ...flags });
  if (resume) return resumedConfig(strategy, resume, base, flags);
  return parseTrainConfig({ ...base, ...flags });
}

/**
 * The config of a resumed run: the checkpoint's, checked as strictly as a config file (it is one,
 * inside meta.json), with --config and flags given now on top (more --max-steps, say). Unless --data
 * is given again, the data must be the dataset the run trained on.
 */
function resumedConfig(strategy: Strategy, resume: string, base: Record<string, unknown>, flags: Record<string, unknown>): TrainConfig {
  const meta = readMeta(resume);
  const file = join(resume, "meta.json");
  if (meta.strategy !== strategy)
    throw new InputError(`--resume ${resume}: a \`${COMMAND[meta.strategy]}\` checkpoint; continue it with \`${COMMAND[meta.strategy]}\` (or start a new \`${COMMAND[strategy]}\` stage from its weights with --init)`);
  const saved: Record<string, unknown> = { ...meta.config };
  for (const k of ["init", "resume", "model"]) delete saved[k];
  // the schema fills every key, other commands' too: those are defaults, not this run's settings
  for (const k of Object.keys(saved)) if (Object.hasOwn(ONLY, k) && !ONLY[k as TrainKey]!.includes(strategy)) delete saved[k];
  checkKeys(saved, strategy, file);
  const own = v.safeParse(TrainConfigSchema, saved);
  if (!own.success) {
    const i = own.issues[0]!;
    throw new InputError(`${file}: config.${i.path?.map((p: any) => p.key).join(".") ?? ""}: ${i.message}`);
  }
  if (flags.data === undefined && base.data === undefined && meta.data.manifest_crc32) {
    const manifest = join(String(saved.data), "manifest.json");
    if (!existsSync(manifest)) throw new InputError(`--resume ${resume}: the run's data ${saved.data} is gone; give --data`);
    if (fileSum(manifest).crc32 !== meta.data.manifest_crc32)
      throw new InputError(`--resume ${resume}: ${saved.data} is not the dataset this run trained on (its manifest.json changed); give --data to continue on it anyway`);
  }
  return parseTrainConfig({ ...saved, ...base, ...flags, resume });
}

const EXIT: Record<string, number> = { SIGINT: 130, SIGTERM: 143 };

export async function runTraining(strategy: Strategy, args: Record<string, unknown>): Promise<void> {
  const cfg = resolveConfig(strategy, args);
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
    console.error(`bunlm: ${sig}: stopping after step ${trainer.step + 1} (or at once where it waits on a reward or a callback), then saving a checkpoint; send again to stop without saving`);
  };
  const sigint = onSignal("SIGINT"), sigterm = onSignal("SIGTERM");
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
      event: "summary", strategy, steps: trainer.step, epoch: trainer.epoch, consumed_samples: trainer.consumed,
      final_loss: last?.loss ?? null, seconds: +((performance.now() - t0) / 1000).toFixed(3), checkpoint: trainer.lastCheckpoint, stopped: trainer.stopReason,
    });
  } finally {
    process.off("SIGINT", sigint);
    process.off("SIGTERM", sigterm);
    run.close();
  }
  if (trainer.stopRequested) process.exit(EXIT[trainer.stopRequested]);
}
