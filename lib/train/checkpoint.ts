// Training checkpoints: RUN_DIR/step_NNNNNN/ with config.json + model.safetensors (a Hugging Face
// Llama checkpoint: generate and transformers load it as is), optimizer.safetensors (AdamW moments
// and step), meta.json (epoch, step, consumed samples, sampler and RNG state, resolved training
// config, metrics so far, data and tokenizer identity) and the tokenizer files. Written into a
// temporary directory and renamed into place; only the newest `keep` survive.
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { saveModel } from "../model/checkpoint.ts";
import { writeSafetensors, readHeader, readTensor } from "../io/safetensors.ts";
import { InputError } from "../io/errors.ts";
import type { ModelConfig } from "../model/config.ts";
import type { ModelParams } from "../model/params.ts";
import type { AdamW } from "../optim/adamw.ts";
import type { SamplerState } from "./sampler.ts";

export interface Meta {
  format: "bunlm-checkpoint";
  strategy: string;
  step: number;
  epoch: number;
  consumed_samples: number;
  sampler: SamplerState;
  rng: number[];
  config: Record<string, unknown>;
  data: { dir: string; tokenizer_hash: string; type: string };
  init: string | null;
  metrics: Record<string, number>[];
  reason: string;
  precision?: "f32" | "mixed";
  loss_scale?: number;
  loss_scale_good_steps?: number;
}

export function stepDirName(step: number): string {
  return `step_${String(step).padStart(6, "0")}`;
}

export async function saveCheckpoint(runDir: string, o: { config: ModelConfig; params: ModelParams; optimizer: AdamW; meta: Meta; tokenizerDir?: string; keep: number }): Promise<string> {
  mkdirSync(runDir, { recursive: true });
  const name = stepDirName(o.meta.step);
  const tmp = join(runDir, `.${name}.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  await saveModel(tmp, o.config, o.params, { step: String(o.meta.step) });
  writeSafetensors(join(tmp, "optimizer.safetensors"), await o.optimizer.state(), { step: String(o.optimizer.step) });
  writeFileSync(join(tmp, "meta.json"), JSON.stringify(o.meta, null, 2) + "\n");
  if (o.tokenizerDir) for (const f of ["tokenizer.json", "tokenizer_config.json"]) if (existsSync(join(o.tokenizerDir, f))) copyFileSync(join(o.tokenizerDir, f), join(tmp, f));
  const final = join(runDir, name);
  rmSync(final, { recursive: true, force: true });
  renameSync(tmp, final);
  // RUN_DIR/latest → the newest checkpoint, so later stages and Makefiles can name it without a step
  const link = join(runDir, `.latest.${process.pid}`);
  rmSync(link, { force: true });
  symlinkSync(name, link);
  renameSync(link, join(runDir, "latest"));
  prune(runDir, o.keep);
  return final;
}

export function listCheckpoints(runDir: string): string[] {
  if (!existsSync(runDir)) return [];
  return readdirSync(runDir).filter((d) => /^step_\d{6,}$/.test(d)).sort();
}

function prune(runDir: string, keep: number): void {
  const all = listCheckpoints(runDir);
  for (const d of all.slice(0, Math.max(0, all.length - keep))) rmSync(join(runDir, d), { recursive: true, force: true });
}

export function readMeta(dir: string): Meta {
  const file = join(dir, "meta.json");
  try {
    const m = JSON.parse(readFileSync(file, "utf8"));
    if (m.format !== "bunlm-checkpoint") throw new Error("not a bunlm checkpoint");
    return m;
  } catch (e: any) {
    throw new InputError(`${file}: ${e.code === "ENOENT" ? "no meta.json (--resume needs a training checkpoint; use --init for weights only)" : e.message}`);
  }
}

export function loadOptimizer(dir: string, opt: AdamW): void {
  const h = readHeader(join(dir, "optimizer.safetensors"));
  const step = Number((readTensor(h, "step").data as BigInt64Array)[0]);
  opt.load((name) => readTensor(h, name).data as Float32Array, step);
}
