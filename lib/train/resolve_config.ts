// How a training run's config is resolved: --config's JSON file, then the flags on top; on --resume,
// the checkpoint's config underneath, checked as strictly as a config file, and the run's data and
// reference held to what the checkpoint recorded.
import { existsSync } from "node:fs";
import { join } from "node:path";
import * as v from "valibot";
import { InputError } from "../base/errors.ts";
import { fileSum, readJsonObject } from "../io/files.ts";
import { readMeta } from "./checkpoint.ts";
import {
  checkKeys,
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
export function resolveConfig(strategy: Strategy, flags: Record<string, unknown>, configFile?: string): TrainConfig {
  let base: Record<string, unknown> = {};
  if (configFile !== undefined) {
    base = readJsonObject(configFile);
    checkKeys(base, strategy, `--config ${configFile}`);
  }
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
function resumedConfig(
  strategy: Strategy,
  resume: string,
  base: Record<string, unknown>,
  flags: Record<string, unknown>,
): TrainConfig {
  const meta = readMeta(resume);
  const file = join(resume, "meta.json");
  if (meta.strategy !== strategy)
    throw new InputError(
      `--resume ${resume}: a \`${COMMAND[meta.strategy]}\` checkpoint; continue it with \`${COMMAND[meta.strategy]}\` (or start a new \`${COMMAND[strategy]}\` stage from its weights with --init)`,
    );
  const saved: Record<string, unknown> = { ...meta.config };
  for (const k of ["init", "resume", "model"]) delete saved[k];
  // the schema fills every key, other commands' too: those are defaults, not this run's settings
  for (const k of Object.keys(saved))
    if (Object.hasOwn(ONLY, k) && !ONLY[k as TrainKey]!.includes(strategy)) delete saved[k];
  checkKeys(saved, strategy, file);
  const own = v.safeParse(TrainConfigSchema, saved);
  if (!own.success) {
    const i = own.issues[0]!;
    throw new InputError(`${file}: config.${i.path?.map((p: any) => p.key).join(".") ?? ""}: ${i.message}`);
  }
  if (flags.data === undefined && base.data === undefined && meta.data.manifest_crc32) {
    const manifest = join(String(saved.data), "manifest.json");
    if (!existsSync(manifest))
      throw new InputError(`--resume ${resume}: the run's data ${saved.data} is gone; give --data`);
    if (fileSum(manifest).crc32 !== meta.data.manifest_crc32)
      throw new InputError(
        `--resume ${resume}: ${saved.data} is not the dataset this run trained on (its manifest.json changed); give --data to continue on it anyway`,
      );
  }
  return parseTrainConfig({ ...saved, ...base, ...flags, resume });
}
