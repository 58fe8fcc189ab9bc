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

export const TrainConfigSchema = v.object({
  data: v.pipe(v.string(), v.minLength(1, "is required")),
  out: v.pipe(v.string(), v.minLength(1, "is required")),
  model: v.optional(v.string()),
  init: v.optional(v.string()),
  resume: v.optional(v.string()),
  max_steps: v.optional(int(1)),
  n_epoch: v.optional(int(1), 1),
  batch_size: v.optional(int(1), 8),
  accumulation_steps: v.optional(int(1), 1),
  max_lr: v.optional(pos, 3e-4),
  min_rate: v.optional(frac, 0.1),
  warmup_steps: v.optional(int(0), 0),
  schedule: v.optional(
    v.picklist(["cosine", "sgdr", "wsd", "constant"], "expected cosine, sgdr, wsd or constant"),
    "cosine",
  ),
  sgdr_cycle: v.optional(int(1)),
  t_mult: v.optional(v.pipe(num(), v.minValue(1, "must be at least 1")), 2),
  wsd_decay_fraction: v.optional(frac, 0.2),
  ckpt_interval: v.optional(int(0), 0),
  keep: v.optional(int(1), 3),
  // the generators take 32 bits: a larger seed would repeat a smaller one's run
  seed: v.optional(v.pipe(int(0), v.maxValue(2 ** 32 - 1, "must be below 2^32")), 0),
  log_interval: v.optional(int(1), 1),
  eval_interval: v.optional(int(0), 0),
  grad_clip: v.optional(nonneg, 1.0),
  weight_decay: v.optional(nonneg, 0.1),
  // β = 1 would make AdamW's bias correction 1 - β^t zero
  beta1: v.optional(below1, 0.9),
  beta2: v.optional(below1, 0.95),
  eps: v.optional(pos, 1e-8),
  // one module, or several (a config file may give either)
  callback: v.optional(
    v.pipe(
      v.union([v.string(), v.array(v.string())], "expected a module path or a list of them"),
      v.transform((x) => (Array.isArray(x) ? x : [x])),
    ),
    [],
  ),
  callback_timeout: v.optional(nonneg, 60),
  precision: v.optional(v.picklist(["auto", "f32", "mixed"], "expected auto, f32 or mixed"), "auto"),
  loss_scale: v.optional(pos, 65536),
  loss_scale_window: v.optional(int(1), 200),
  // seq, sft
  label_smoothing: v.optional(below1, 0),
  // dpo
  beta: v.optional(pos, 0.1),
  reduction: v.optional(v.picklist(["sum", "mean"], "expected sum or mean"), "sum"),
  // grpo
  group_size: v.optional(int(2), 4),
  max_new_tokens: v.optional(int(1), 64),
  temperature: v.optional(nonneg, 1.0),
  top_p: v.optional(v.pipe(num(), v.gtValue(0, "must be in (0, 1]"), v.maxValue(1, "must be in (0, 1]")), 1.0),
  clip_eps: v.optional(v.pipe(num(), v.minValue(0, "must be in [0, 1)"), v.ltValue(1, "must be in [0, 1)")), 0.2),
  kl_coef: v.optional(nonneg, 0.01),
  sync_interval: v.optional(int(0), 200),
  reward: v.optional(v.string()),
  reward_cmd: v.optional(v.string()),
  reward_timeout: v.optional(nonneg, 60),
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
  if (!r.success) {
    const i = r.issues[0]!;
    const key = i.path?.map((p: any) => p.key).join(".") ?? "";
    const got =
      i.input === undefined ? "" : ` (got ${typeof i.input === "number" ? String(i.input) : JSON.stringify(i.input)})`;
    throw new InputError(`--${key.replace(/_/g, "-")}: ${i.message}${got}`);
  }
  parseConflicts(r.output);
  return r.output;
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
  if (c.reward && c.reward_cmd) throw new InputError("--reward and --reward-cmd exclude each other (give one reward)");
}
