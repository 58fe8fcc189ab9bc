// The training config: one valibot schema for all four commands (a JSON file with --config, then
// flags on top). The resolved config is written into every checkpoint's meta.json.
// Every number is checked finite and in range before anything runs (an Infinity learning rate or a
// beta2 of 1 would only show up as NaN weights later). A key the schema does not know, or one that
// belongs to another command (`group_size` given to sft), is refused with the closest valid name.
import * as v from "valibot";
import { InputError } from "../base/errors.ts";
import { closest } from "../base/suggest.ts";

const num = () => v.pipe(v.number("expected a number"), v.finite("expected a finite number"));
const int = (min = 0) =>
  v.pipe(
    v.number("expected a number"),
    v.safeInteger("expected a whole number"),
    v.minValue(min, `must be at least ${min}`),
  );
const pos = v.pipe(num(), v.gtValue(0, "must be positive"));
const nonneg = v.pipe(num(), v.minValue(0, "must be at least 0"));
const frac = v.pipe(num(), v.minValue(0, "must be in [0, 1]"), v.maxValue(1, "must be in [0, 1]"));
const below1 = v.pipe(num(), v.minValue(0, "must be in [0, 1)"), v.ltValue(1, "must be in [0, 1)"));

/** A key's rule and its one-line description (shown by --help and docs/config.md). */
const about = <S extends v.GenericSchema>(schema: S, text: string) => v.pipe(schema, v.description(text));
/** An optional key: its rule, its default (shown by --help), its description. */
const opt = <S extends v.GenericSchema>(schema: S, fallback: v.InferOutput<S> | undefined, text: string) =>
  v.optional(about(schema, text), fallback as never);

export const TrainConfigSchema = v.object({
  data: about(v.pipe(v.string(), v.minLength(1, "is required")), "shard directory from `pack`"),
  out: about(
    v.pipe(v.string(), v.minLength(1, "is required")),
    "run directory: checkpoints step_NNNNNN/, `latest`, metrics.jsonl",
  ),
  model: opt(v.string(), undefined, "model config JSON for a new model (vocab_size defaults to the tokenizer's)"),
  init: opt(v.string(), undefined, "start from these weights (a new stage, e.g. sft after pretrain)"),
  resume: opt(
    v.string(),
    undefined,
    "continue this checkpoint's run exactly; `auto`: --out's latest checkpoint, or a fresh start when it has none",
  ),
  max_steps: opt(int(1), undefined, "optimizer steps (unset: --n-epoch epochs)"),
  n_epoch: opt(int(1), 1, "epochs when --max-steps is not given"),
  batch_size: opt(int(1), 8, "rows per micro-batch (per rank under MPI: the global batch is this × ranks)"),
  accumulation_steps: opt(int(1), 1, "micro-batches per optimizer step"),
  max_lr: opt(pos, 3e-4, "peak learning rate"),
  min_rate: opt(frac, 0.1, "final learning rate as a fraction of --max-lr"),
  warmup_steps: opt(int(0), 0, "linear warmup steps"),
  schedule: opt(
    v.picklist(["cosine", "sgdr", "wsd", "constant"], "expected cosine, sgdr, wsd or constant"),
    "cosine",
    "learning-rate schedule after warmup",
  ),
  sgdr_cycle: opt(int(1), undefined, "sgdr: steps in the first cycle (unset: a third of the steps after warmup)"),
  t_mult: opt(v.pipe(num(), v.minValue(1, "must be at least 1")), 2, "sgdr: each cycle this many times longer"),
  wsd_decay_fraction: opt(frac, 0.2, "wsd: the fraction of steps that decay at the end"),
  ckpt_interval: opt(int(0), 0, "checkpoint every K steps (0: only at the end)"),
  keep: opt(int(1), 3, "checkpoints to keep"),
  save_dtype: opt(
    v.picklist(["auto", "float32", "bfloat16", "float16"], "expected auto, float32, bfloat16 or float16"),
    "auto",
    "dtype of the saved weights (auto: the one --init/--resume weights had; float32 for a new model); a narrower one keeps f32 masters beside the optimizer state",
  ),
  // the generators take 32 bits: a larger seed would repeat a smaller one's run
  seed: opt(
    v.pipe(int(0), v.maxValue(2 ** 32 - 1, "must be below 2^32")),
    0,
    "seed for initialization, data order and sampling",
  ),
  log_interval: opt(int(1), 1, "print a step line every K steps"),
  eval_interval: opt(int(0), 0, "validation loss every K steps, when the data has a val split (0: off)"),
  grad_clip: opt(nonneg, 1.0, "global gradient-norm clip (0: off)"),
  weight_decay: opt(nonneg, 0.1, "AdamW weight decay on matrices"),
  // β = 1 would make AdamW's bias correction 1 - β^t zero
  beta1: opt(below1, 0.9, "AdamW β1"),
  beta2: opt(below1, 0.95, "AdamW β2"),
  eps: opt(pos, 1e-8, "AdamW ε"),
  optimizer: opt(
    v.picklist(["adamw", "muon"], "expected adamw or muon"),
    "adamw",
    "adamw | muon: Newton–Schulz-orthogonalized momentum for the layers' 2-D matrices, AdamW for embeddings, head, norms, biases",
  ),
  // Muon's own lr (KellerJordan/Muon's default), not --max-lr rescaled: its update is an orthogonal
  // matrix whose RMS differs from Adam's, and the reference and nanochat tune the two separately
  muon_lr: opt(pos, 0.02, "Muon's peak learning rate; it follows the schedule by the same fraction as --max-lr"),
  muon_momentum: opt(below1, 0.95, "Muon momentum β (Nesterov)"),
  muon_ns_steps: opt(int(1), 5, "Muon Newton–Schulz iterations"),
  muon_weight_decay: opt(nonneg, 0, "Muon decoupled weight decay (p ← p·(1 - muon_lr·wd))"),
  // one module, or several (a config file may give either)
  callback: opt(
    v.pipe(
      v.union([v.string(), v.array(v.string())], "expected a module path or a list of them"),
      v.transform((x) => (Array.isArray(x) ? x : [x])),
    ),
    [],
    "a TS module whose default export is a Callback (repeat the flag for several)",
  ),
  callback_timeout: opt(nonneg, 60, "seconds a callback hook may take (0: no limit)"),
  precision: opt(
    v.picklist(["auto", "f32", "mixed"], "expected auto, f32 or mixed"),
    "auto",
    "f32 | mixed (f16 matmul inputs, f32 accumulation, loss scaling) | auto: mixed where the adapter has tensor cores",
  ),
  loss_scale: opt(pos, 65536, "initial dynamic loss scale for mixed precision"),
  recompute: opt(
    v.boolean("expected true or false"),
    false,
    "keep only each layer's input and recompute its activations in the backward: less memory, one more forward per step, the same bits",
  ),
  dist: opt(
    v.picklist(["auto", "mpi", "off"], "expected auto, mpi or off"),
    "auto",
    "data parallelism over MPI ranks: auto (when started by mpirun/mpiexec) | mpi | off (one process)",
  ),
  loss_scale_window: opt(int(1), 200, "good steps before the loss scale doubles"),
  // LoRA (lib/model/lora.ts): PEFT's names, and PEFT's all-linear set of projections by default
  lora_rank: opt(
    int(1),
    undefined,
    "LoRA: train rank-R adapters on the --lora-targets projections, the base frozen (needs --init or --resume)",
  ),
  lora_alpha: opt(pos, undefined, "LoRA α: the adapters' path is scaled by α/r (unset: α = 2r)"),
  lora_targets: opt(
    v.pipe(
      v.union([v.string(), v.array(v.string())], "expected a comma-separated list of projections"),
      v.transform((x) => (Array.isArray(x) ? x : [x]).flatMap((s) => s.split(",")).map((s) => s.trim())),
      v.array(
        v.picklist(
          ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
          "expected q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj or down_proj",
        ),
      ),
    ),
    ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "LoRA: the projections that get adapters, comma-separated",
  ),
  // bunlm has no dropout: 0 is accepted so that a PEFT-style config reads as it is
  lora_dropout: opt(v.pipe(num(), v.maxValue(0, "bunlm has no dropout: only 0")), 0, "LoRA dropout: only 0"),
  // seq, sft
  label_smoothing: opt(below1, 0, "label smoothing for the cross-entropy"),
  // dpo
  beta: opt(pos, 0.1, "DPO temperature β"),
  reduction: opt(v.picklist(["sum", "mean"], "expected sum or mean"), "sum", "sequence log-prob over response tokens"),
  // grpo
  group_size: opt(int(2), 4, "responses sampled per prompt"),
  max_new_tokens: opt(int(1), 64, "response length limit"),
  temperature: opt(nonneg, 1.0, "sampling temperature"),
  top_p: opt(
    v.pipe(num(), v.gtValue(0, "must be in (0, 1]"), v.maxValue(1, "must be in (0, 1]")),
    1.0,
    "nucleus sampling threshold",
  ),
  clip_eps: opt(
    v.pipe(num(), v.minValue(0, "must be in [0, 1)"), v.ltValue(1, "must be in [0, 1)")),
    0.2,
    "ratio clip ε",
  ),
  kl_coef: opt(nonneg, 0.01, "KL penalty β"),
  sync_interval: opt(int(0), 200, "re-sync the reference to the policy every K steps (0: never)"),
  reward: opt(v.string(), undefined, "TS module exporting reward(prompt, response, row)"),
  reward_cmd: opt(
    v.string(),
    undefined,
    'command: {"id","prompt","response","row"} lines in on stdin, one {"id","reward"} line out per request',
  ),
  reward_timeout: opt(nonneg, 60, "seconds a reward may take per request (0: no limit)"),
});

export type TrainConfig = v.InferOutput<typeof TrainConfigSchema>;
export type TrainKey = keyof TrainConfig;
export type Strategy = "seq" | "sft" | "dpo" | "grpo";

/** Keys only some commands use; every other key is common to all four. */
export const ONLY: Partial<Record<TrainKey, Strategy[]>> = {
  label_smoothing: ["seq", "sft"],
  beta: ["dpo"],
  reduction: ["dpo"],
  group_size: ["grpo"],
  max_new_tokens: ["grpo"],
  temperature: ["grpo"],
  top_p: ["grpo"],
  clip_eps: ["grpo"],
  kl_coef: ["grpo"],
  sync_interval: ["grpo"],
  reward: ["grpo"],
  reward_cmd: ["grpo"],
  reward_timeout: ["grpo"],
};

export const COMMAND: Record<Strategy, string> = { seq: "pretrain", sft: "sft", dpo: "dpo", grpo: "grpo" };

/** The config keys `strategy` accepts. */
export function keysFor(strategy: Strategy): TrainKey[] {
  return (Object.keys(TrainConfigSchema.entries) as TrainKey[]).filter((k) => !ONLY[k] || ONLY[k]!.includes(strategy));
}

/**
 * Refuse keys (from a config file, or flags turned into keys) that the schema does not know or that
 * another command uses. `where` names the source: "--config run.json" or "" for flags.
 */
export function checkKeys(raw: Record<string, unknown>, strategy: Strategy, where: string): void {
  const known = keysFor(strategy);
  for (const k of Object.keys(raw)) {
    if (known.includes(k as TrainKey)) continue;
    const name = (key: string) => (where ? `"${key}"` : `--${key.replace(/_/g, "-")}`);
    const prefix = where ? `${where}: ` : "";
    const users = Object.hasOwn(ONLY, k) ? ONLY[k as TrainKey] : undefined;
    if (users)
      throw new InputError(
        `${prefix}${name(k)} is a setting of ${users.map((s) => `\`${COMMAND[s]}\``).join(" and ")}; \`${COMMAND[strategy]}\` does not use it`,
      );
    const near = closest(k, known);
    throw new InputError(
      `${prefix}unknown ${where ? "key" : "flag"} ${name(k)}${near ? ` (did you mean ${name(near)}?)` : ""}`,
    );
  }
}

export function parseTrainConfig(raw: unknown): TrainConfig {
  const r = v.safeParse(TrainConfigSchema, raw);
  if (!r.success) throw new InputError(issueLine(r.issues[0]!));
  parseConflicts(r.output);
  return r.output;
}

/**
 * One schema issue as a person would say it, naming the flag: "--data is required", "--max-lr: must
 * be positive (got -1)". `where` names a file instead (`meta.json: config.beta1: must be in [0, 1) (got 1)`).
 */
export function issueLine(i: v.BaseIssue<unknown>, where?: string, keyPrefix = ""): string {
  const key = keyPrefix + (i.path?.map((p: any) => p.key).join(".") ?? "");
  const name = where ? `${where}: ${key}` : `--${key.replace(/_/g, "-")}`;
  // a key left out (valibot: 'Invalid key: Expected "data" but received undefined')
  if (i.input === undefined) return `${name} is required`;
  const got = ` (got ${typeof i.input === "number" ? String(i.input) : JSON.stringify(i.input)})`;
  return `${name}: ${i.message}${got}`;
}

/** Flags that exclude each other. */
export function parseConflicts(c: Partial<Record<TrainKey, unknown>>): void {
  if (c.init && c.resume)
    throw new InputError(
      "--init and --resume exclude each other (init starts a new stage from weights; resume continues a run)",
    );
  if (c.model && (c.init || c.resume))
    throw new InputError(
      `--model and ${c.init ? "--init" : "--resume"} exclude each other (the checkpoint brings its own config.json; --model describes a new model)`,
    );
  if (c.lora_rank === undefined && c.lora_alpha !== undefined)
    throw new InputError("--lora-alpha needs --lora-rank (LoRA is off without a rank)");
  if (c.lora_rank !== undefined && c.model)
    throw new InputError("--lora-rank needs --init BASE_DIR: adapters train on existing weights, not on a new --model");
  // Muon orthogonalizes whole hidden matrices; a rank-r adapter pair is not one (its authors' split
  // gives adapters to AdamW, which is what --optimizer adamw does)
  if (c.lora_rank !== undefined && c.optimizer === "muon")
    throw new InputError(
      "--optimizer muon and --lora-rank exclude each other (Muon is for whole hidden matrices; LoRA adapters train with adamw)",
    );
  if (c.reward && c.reward_cmd) throw new InputError("--reward and --reward-cmd exclude each other (give one reward)");
}
