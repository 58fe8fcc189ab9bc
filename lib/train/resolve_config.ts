// How a training run's config is resolved: --config's JSON file, then the flags on top; on --resume,
// the checkpoint's config underneath, checked as strictly as a config file, and the run's data and
// reference held to what the checkpoint recorded.
import { existsSync } from "node:fs";
import { join } from "node:path";
import * as v from "valibot";
import { InputError } from "../base/errors.ts";
import { fileSum, readJsonObject } from "../io/files.ts";
import { listCheckpoints, readMeta } from "./checkpoint.ts";
import { log } from "../base/log.ts";
import {
  checkKeys,
  issueLine,
  COMMAND,
  ONLY,
  parseConflicts,
  parseTrainConfig,
  TrainConfigSchema,
  type Strategy,
  type TrainConfig,
  type TrainKey,
} from "./config.ts";

/**
 * The run's config: the file given with --config, then the flags given (as config keys) on top; on
 * --resume, the checkpoint's own config underneath both.
 */
export function resolveConfig(
  strategy: Strategy,
  flags: Record<string, unknown>,
  configFile?: string,
  /** ranks of a data-parallel run: a resume splits the checkpoint's global batch among them */
  worldSize = 1,
): TrainConfig {
  let base: Record<string, unknown> = {};
  if (configFile !== undefined) {
    base = readJsonObject(configFile);
    checkKeys(base, strategy, `--config ${configFile}`);
  }
  let resume = (flags.resume ?? base.resume) as string | undefined;
  if (resume === "auto") {
    const out = (flags.out ?? base.out) as string | undefined;
    if (typeof out !== "string" || !out) throw new InputError("--resume auto needs --out (the run to continue)");
    resume = latestCheckpoint(out, strategy);
    // no checkpoint yet: a fresh start from --model or --init, which a real resume would refuse
    flags = { ...flags, resume };
    base = { ...base, resume };
    if (resume !== undefined) {
      for (const k of ["model", "init"]) {
        delete flags[k];
        delete base[k];
      }
      log.info(`--resume auto: continuing ${resume}`);
    } else log.info(`--resume auto: ${out} has no \`${COMMAND[strategy]}\` checkpoint yet; starting a new run`);
  }
  // conflicts first: they say more than whatever reading the checkpoint would find
  parseConflicts({ ...base, ...flags });
  if (resume) return resumedConfig(strategy, resume, base, flags, worldSize);
  return parseTrainConfig({ ...base, ...flags });
}

/**
 * The newest checkpoint of `strategy` in run directory `out` (by the step meta.json records), or
 * undefined when there is none. A checkpoint of another command there is refused: continuing it is
 * that command's job, and starting over would replace it.
 */
function latestCheckpoint(out: string, strategy: Strategy): string | undefined {
  const all = listCheckpoints(out);
  const other = all.find((c) => c.strategy !== undefined && c.strategy !== strategy);
  if (other)
    throw new InputError(
      `--resume auto: ${join(out, other.name)} is a \`${COMMAND[other.strategy as Strategy] ?? other.strategy}\` checkpoint; \`${COMMAND[strategy]}\` continues only its own runs`,
    );
  const last = all.filter((c) => c.strategy === strategy).at(-1);
  return last ? join(out, last.name) : undefined;
}

/**
 * The config of a resumed run: the checkpoint's, checked as strictly as a config file (it is one,
 * inside meta.json), with --config and flags given now on top (more --max-steps, say). Unless --data
 * is given again, the data must be the dataset the run trained on.
 */
function resumedConfig(
  strategy: Strategy,
  resume: string,
  base: Record<string, unknown>,
  flags: Record<string, unknown>,
  worldSize: number,
): TrainConfig {
  const meta = readMeta(resume);
  const file = join(resume, "meta.json");
  if (meta.strategy !== strategy)
    throw new InputError(
      `--resume ${resume}: a \`${COMMAND[meta.strategy]}\` checkpoint; continue it with \`${COMMAND[meta.strategy]}\` (or start a new \`${COMMAND[strategy]}\` stage from its weights with --init)`,
    );
  const saved: Record<string, unknown> = { ...meta.config };
  // how this invocation is launched is its own business, not the run's
  for (const k of ["init", "resume", "model", "dist"]) delete saved[k];
  // the schema fills every key, other commands' too: those are defaults, not this run's settings
  for (const k of Object.keys(saved))
    if (Object.hasOwn(ONLY, k) && !ONLY[k as TrainKey]!.includes(strategy)) delete saved[k];
  checkKeys(saved, strategy, file);
  const own = v.safeParse(TrainConfigSchema, saved);
  if (!own.success) throw new InputError(issueLine(own.issues[0]!, file, "config."));
  if (flags.data === undefined && base.data === undefined && meta.data.manifest_crc32) {
    const manifest = join(String(saved.data), "manifest.json");
    if (!existsSync(manifest))
      throw new InputError(`--resume ${resume}: the run's data ${saved.data} is gone; give --data`);
    if (fileSum(manifest).crc32 !== meta.data.manifest_crc32)
      throw new InputError(
        `--resume ${resume}: ${saved.data} is not the dataset this run trained on (its manifest.json changed); give --data to continue on it anyway`,
      );
  }
  // the global batch carries over to any number of ranks, unless a batch size is given now
  if (flags.batch_size === undefined && base.batch_size === undefined && typeof saved.batch_size === "number") {
    const global = meta.global_batch_size ?? saved.batch_size;
    if (global % worldSize !== 0)
      throw new InputError(
        `--resume ${resume}: its global batch of ${global} rows (${saved.batch_size} per rank × ${meta.world_size ?? 1} ranks) does not divide among ${worldSize} ranks; run on a divisor of ${global} ranks, or give --batch-size (rows per rank) to change the global batch`,
      );
    saved.batch_size = global / worldSize;
  }
  return parseTrainConfig({ ...saved, ...base, ...flags, resume });
}

/**
 * --dist as given (a flag over --config's key over the default): read before the rest of the config,
 * since a resume needs the number of ranks to split its global batch.
 */
export function distMode(flags: Record<string, unknown>, configFile?: string): TrainConfig["dist"] {
  let raw = flags.dist;
  let where = "--dist";
  if (raw === undefined && configFile !== undefined) {
    raw = readJsonObject(configFile).dist;
    where = `--config ${configFile}: dist`;
  }
  if (raw === undefined) return "auto";
  const r = v.safeParse(TrainConfigSchema.entries.dist, raw);
  if (!r.success) throw new InputError(`${where}: ${r.issues[0]!.message} (got ${JSON.stringify(raw)})`);
  return r.output;
}
