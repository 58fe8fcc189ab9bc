// The training config: one valibot schema for all four commands (a JSON file with --config, then
// flags on top). The resolved config is written into every checkpoint's meta.json.
import * as v from "valibot";
import { InputError } from "../io/errors.ts";

const int = (min = 0) => v.pipe(v.number("expected a number"), v.integer("expected a whole number"), v.minValue(min, `must be at least ${min}`));
const pos = v.pipe(v.number("expected a number"), v.gtValue(0, "must be positive"));
const frac = v.pipe(v.number("expected a number"), v.minValue(0, "must be in [0, 1]"), v.maxValue(1, "must be in [0, 1]"));

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
  schedule: v.optional(v.picklist(["cosine", "sgdr", "wsd", "constant"], "expected cosine, sgdr, wsd or constant"), "cosine"),
  sgdr_cycle: v.optional(int(1)),
  t_mult: v.optional(pos, 2),
  wsd_decay_fraction: v.optional(frac, 0.2),
  ckpt_interval: v.optional(int(0), 0),
  keep: v.optional(int(1), 3),
  seed: v.optional(int(0), 0),
  log_interval: v.optional(int(1), 1),
  eval_interval: v.optional(int(0), 0),
  grad_clip: v.optional(v.number(), 1.0),
  weight_decay: v.optional(v.pipe(v.number(), v.minValue(0)), 0.1),
  beta1: v.optional(frac, 0.9),
  beta2: v.optional(frac, 0.95),
  eps: v.optional(pos, 1e-8),
  callback: v.optional(v.array(v.string()), []),
  precision: v.optional(v.picklist(["auto", "f32", "mixed"], "expected auto, f32 or mixed"), "auto"),
  loss_scale: v.optional(pos, 65536),
  loss_scale_window: v.optional(int(1), 200),
  // seq
  label_smoothing: v.optional(frac, 0),
  // dpo
  beta: v.optional(pos, 0.1),
  reduction: v.optional(v.picklist(["sum", "mean"], "expected sum or mean"), "sum"),
  // grpo
  group_size: v.optional(int(2), 4),
  max_new_tokens: v.optional(int(1), 64),
  temperature: v.optional(v.pipe(v.number(), v.minValue(0)), 1.0),
  top_p: v.optional(v.pipe(v.number(), v.gtValue(0), v.maxValue(1)), 1.0),
  clip_eps: v.optional(v.pipe(v.number(), v.minValue(0)), 0.2),
  kl_coef: v.optional(v.pipe(v.number(), v.minValue(0)), 0.01),
  sync_interval: v.optional(int(0), 200),
  reward: v.optional(v.string()),
  reward_cmd: v.optional(v.string()),
  /** seconds a reward (command or module) may take per request; 0 = no limit */
  reward_timeout: v.optional(v.pipe(v.number("expected a number"), v.minValue(0, "must be at least 0")), 60),
  /** seconds a user callback's hook may take; 0 = no limit */
  callback_timeout: v.optional(v.pipe(v.number("expected a number"), v.minValue(0, "must be at least 0")), 60),
});

export type TrainConfig = v.InferOutput<typeof TrainConfigSchema>;

export function parseTrainConfig(raw: unknown): TrainConfig {
  const r = v.safeParse(TrainConfigSchema, raw);
  if (!r.success) {
    const i = r.issues[0]!;
    const key = i.path?.map((p: any) => p.key).join(".") ?? "";
    throw new InputError(`--${key.replace(/_/g, "-")}: ${i.message}`);
  }
  const c = r.output;
  if (c.init && c.resume) throw new InputError("--init and --resume exclude each other (init starts a new stage from weights; resume continues a run)");
  return c;
}
