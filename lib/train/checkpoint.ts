// Training checkpoints: RUN_DIR/step_NNNNNN/ with config.json + model.safetensors (a Hugging Face
// Llama checkpoint: generate and transformers load it as is), optimizer.safetensors (AdamW moments
// and step; with --optimizer muon also its momenta, muon_m.NAME), meta.json (epoch, step, consumed
// samples, sampler and RNG state, resolved training config, metrics so far, data and tokenizer identity, the global batch and the ranks that trained,
// and the size and CRC-32 of every file beside it), the tokenizer files and generation_config.json (the ids that end a completion, <|im_end|>
// among them, for transformers' generate). Written into a temporary directory and renamed into place.
// A state with a NaN or Inf weight or moment is never written: "the last good state" means finite.
// Retention keeps the `keep` checkpoints with the highest steps (by meta.json, not by name) and never
// removes the one just written.
// A LoRA run's checkpoint holds adapter_model.safetensors + adapter_config.json (PEFT's layout, naming
// the base directory) in place of config.json + model.safetensors: the base weights are not copied.
import { copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, rmdirSync, rmSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import * as v from "valibot";
import {
  countNonFinite,
  FileSumsSchema,
  modelTensors,
  verifyRecorded,
  writeModel,
  type WeightDtype,
  type FileSums,
} from "../model/checkpoint.ts";
import { GENERATION_CONFIG, generationConfigJson, readGenerationDefaults } from "../model/generation_config.ts";
import { writeSafetensors, readHeader, readTensor, type TensorData } from "../io/safetensors.ts";
import { readSpecialIds } from "../tokenizer/special_ids.ts";
import { InputError } from "../base/errors.ts";
import { fileSum, readJsonObject, writeFileAtomic } from "../io/files.ts";
import { tempDir, tempFile } from "../io/stale.ts";
import type { ModelConfig } from "../model/config.ts";
import type { ModelParams } from "../model/params.ts";
import { Muon, stateShapes, type Optimizer } from "../optim/muon.ts";
import { ADAPTER_CONFIG, ADAPTER_MODEL, adapterTensors, writeAdapter, type Lora } from "../model/lora.ts";

const count = v.pipe(
  v.number("expected a number"),
  v.safeInteger("expected a whole number"),
  v.minValue(0, "expected a count, at least 0"),
);
const u32 = v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(0xffffffff));

export const MetaSchema = v.object({
  format: v.literal("bunlm-checkpoint"),
  strategy: v.picklist(["seq", "sft", "dpo", "grpo"]),
  step: count,
  epoch: count,
  consumed_samples: count,
  sampler: v.object({ epoch: count, position: count }),
  rng: v.pipe(v.array(u32), v.length(4)),
  config: v.record(v.string(), v.unknown()),
  data: v.object({
    dir: v.string(),
    tokenizer_hash: v.string(),
    type: v.string(),
    manifest_crc32: v.optional(v.string()),
  }),
  init: v.nullable(v.string()),
  init_model: v.optional(v.object({ bytes: count, crc32: v.string() })),
  metrics: v.array(v.record(v.string(), v.number())),
  reason: v.string(),
  precision: v.optional(v.picklist(["f32", "mixed"])),
  loss_scale: v.optional(v.pipe(v.number(), v.finite(), v.gtValue(0))),
  loss_scale_good_steps: v.optional(count),
  // rows per micro-batch over all ranks, and the ranks that trained (absent before data parallelism:
  // then the global batch is config.batch_size)
  global_batch_size: v.optional(v.pipe(count, v.minValue(1))),
  world_size: v.optional(v.pipe(count, v.minValue(1))),
  files: v.optional(FileSumsSchema),
});

export type Meta = v.InferOutput<typeof MetaSchema>;

/** What a checkpoint directory holds: removing one removes these and leaves anything else. */
export const CHECKPOINT_FILES = [
  "config.json",
  "model.safetensors",
  ADAPTER_MODEL,
  ADAPTER_CONFIG,
  "optimizer.safetensors",
  "meta.json",
  "tokenizer.json",
  "tokenizer_config.json",
  GENERATION_CONFIG,
];

/**
 * Remove a checkpoint directory's own files, and the directory when nothing else is in it. Returns
 * the names of files someone else put there (kept, and the directory with them).
 */
export function removeCheckpoint(dir: string): string[] {
  for (const f of CHECKPOINT_FILES) rmSync(join(dir, f), { force: true });
  let left: string[] = [];
  try {
    left = readdirSync(dir);
    if (left.length === 0) rmdirSync(dir);
  } catch {}
  return left;
}

export function stepDirName(step: number): string {
  return `step_${String(step).padStart(6, "0")}`;
}

/** The weights or optimizer moments are not all finite: such a state is never saved. */
export class NonFiniteState extends Error {
  code = "E_NONFINITE";
}

function firstNonFinite(tensors: Record<string, TensorData>, what: string): void {
  for (const [name, t] of Object.entries(tensors)) {
    if (t.dtype !== "F32") continue;
    const bad = countNonFinite(t.data as Float32Array);
    if (bad) throw new NonFiniteState(`${what} "${name}" holds ${bad} NaN/Inf values`);
  }
}

export async function saveCheckpoint(
  runDir: string,
  o: {
    config: ModelConfig;
    params: ModelParams;
    optimizer: Optimizer;
    meta: Omit<Meta, "files">;
    tokenizerDir?: string;
    keep: number;
    /** the weights' dtype in model.safetensors (default F32) */
    dtype?: WeightDtype;
    /** LoRA: the adapters are saved (PEFT's files, f32) in place of the weights, which stay in the base */
    lora?: { adapters: Lora; base: string };
  },
): Promise<string> {
  const weights = o.lora ? await adapterTensors(o.lora.adapters) : await modelTensors(o.params);
  firstNonFinite(weights, "the weight");
  const moments = await o.optimizer.state();
  const dtype = o.lora ? "F32" : (o.dtype ?? "F32");
  // rounded weights would not resume exactly: the f32 masters go beside the optimizer state
  if (dtype !== "F32") for (const [name, t] of Object.entries(weights)) moments[`master.${name}`] = t;
  firstNonFinite(moments, "the optimizer state");
  mkdirSync(runDir, { recursive: true });
  const name = stepDirName(o.meta.step);
  const tmp = tempDir(join(runDir, `.${name}`));
  rmSync(tmp, { recursive: true, force: true });
  try {
    const files: FileSums = o.lora
      ? writeAdapter(tmp, o.lora.adapters.spec, weights, o.lora.base)
      : writeModel(tmp, o.config, weights, { step: String(o.meta.step) }, dtype);
    files["optimizer.safetensors"] = writeSafetensors(join(tmp, "optimizer.safetensors"), moments, {
      step: String(o.optimizer.step),
    });
    if (o.tokenizerDir)
      for (const f of ["tokenizer.json", "tokenizer_config.json"])
        if (existsSync(join(o.tokenizerDir, f))) {
          copyFileSync(join(o.tokenizerDir, f), join(tmp, f));
          files[f] = fileSum(join(tmp, f));
        }
    const specials = existsSync(join(tmp, "tokenizer.json")) ? readSpecialIds(tmp) : null;
    files[GENERATION_CONFIG] = writeFileAtomic(
      join(tmp, GENERATION_CONFIG),
      // the sampling defaults of the model this stage started from travel with its checkpoints
      JSON.stringify(
        generationConfigJson(o.config, specials, o.meta.init ? readGenerationDefaults(o.meta.init) : {}),
        null,
        2,
      ) + "\n",
    );
    writeFileAtomic(join(tmp, "meta.json"), JSON.stringify({ ...o.meta, files }, null, 2) + "\n");
  } catch (e: any) {
    rmSync(tmp, { recursive: true, force: true });
    if (e?.code === "ENOSPC" || /no space left/.test(e?.message ?? ""))
      throw new InputError(`${join(runDir, name)}: no space left on the device; the checkpoint was not written`);
    throw e;
  }
  const final = join(runDir, name);
  // a checkpoint of this step from before (a resume from an earlier step) is replaced; files a user
  // put beside it stay, and the new files join them
  const kept = existsSync(final) ? removeCheckpoint(final) : [];
  if (kept.length) {
    for (const f of readdirSync(tmp)) renameSync(join(tmp, f), join(final, f));
    rmdirSync(tmp);
  } else renameSync(tmp, final);
  // RUN_DIR/latest → the newest checkpoint, so later stages and Makefiles can name it without a step
  const link = tempFile(join(runDir, "latest"));
  rmSync(link, { force: true });
  symlinkSync(name, link);
  renameSync(link, join(runDir, "latest"));
  prune(runDir, o.keep, name);
  return final;
}

export interface CheckpointEntry {
  name: string;
  step: number;
  /** the strategy meta.json records, when it can be read */
  strategy?: string;
}

/** The checkpoints in a run directory, by the step their meta.json records (oldest first). */
export function listCheckpoints(runDir: string): CheckpointEntry[] {
  if (!existsSync(runDir)) return [];
  const out: CheckpointEntry[] = [];
  for (const name of readdirSync(runDir)) {
    if (!/^step_\d{6,}$/.test(name)) continue;
    let step = Number(name.slice(5));
    let strategy: string | undefined;
    try {
      const m = readJsonObject(join(runDir, name, "meta.json"));
      if (typeof m.step === "number") step = m.step;
      if (typeof m.strategy === "string") strategy = m.strategy;
    } catch {}
    out.push({ name, step, strategy });
  }
  return out.sort((a, b) => a.step - b.step || (a.name < b.name ? -1 : 1));
}

function prune(runDir: string, keep: number, justWritten: string): void {
  const all = listCheckpoints(runDir);
  const drop = all.slice(0, Math.max(0, all.length - keep)).filter((c) => c.name !== justWritten);
  for (const c of drop) removeCheckpoint(join(runDir, c.name));
}

/** meta.json of a training checkpoint, validated. */
export function readMeta(dir: string): Meta {
  const file = join(dir, "meta.json");
  if (!existsSync(dir)) throw new InputError(`${dir}: no such checkpoint directory`);
  if (!existsSync(file))
    throw new InputError(`${dir}: no meta.json (--resume needs a training checkpoint; use --init for weights only)`);
  const raw = readJsonObject(file);
  if (raw.format !== "bunlm-checkpoint") throw new InputError(`${file}: not a bunlm checkpoint's meta.json`);
  const r = v.safeParse(MetaSchema, raw);
  if (!r.success) {
    const i = r.issues[0]!;
    const path = i.path?.map((p: any) => p.key).join(".") ?? "";
    throw new InputError(
      `${file}: ${path ? `"${path}" ` : ""}${i.received === "undefined" ? "is missing" : `is ${i.received}: ${i.message.startsWith("expected") ? i.message : `expected ${i.expected}`}`}`,
    );
  }
  return r.output;
}

/**
 * Load the optimizer state (AdamW moments, Muon momenta) and step of a checkpoint, checked against the
 * model and optimizer being trained and its meta.json step.
 */
export function loadOptimizer(dir: string, opt: Optimizer, metaStep: number): void {
  verifyRecorded(dir, ["optimizer.safetensors"]);
  const file = join(dir, "optimizer.safetensors");
  const h = readHeader(file);
  const byName = new Map(h.tensors.map((t) => [t.name, t]));
  // the optimizer that wrote the file: only Muon's has momentum buffers
  const wrote = h.tensors.some((t) => t.name.startsWith("muon_m.")) ? "muon" : "adamw";
  const runs = opt instanceof Muon ? "muon" : "adamw";
  if (wrote !== runs)
    throw new InputError(
      `${file}: the state of --optimizer ${wrote}, but this run has --optimizer ${runs}; resume with --optimizer ${wrote} (or start a new stage from its weights with --init)`,
    );
  const want = stateShapes(opt);
  for (const [name, shape] of want) {
    const t = byName.get(name);
    if (!t) throw new InputError(`${file}: no tensor "${name}" (is this checkpoint from another model?)`);
    const dtype = name === "step" ? "I64" : "F32";
    if (t.dtype !== dtype || t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]))
      throw new InputError(
        `${file}: "${name}" is ${t.dtype}[${t.shape}], the model needs ${dtype}[${shape}] (is this checkpoint from another model?)`,
      );
  }
  for (const name of byName.keys())
    if (!want.has(name) && !name.startsWith("master."))
      throw new InputError(`${file}: unexpected tensor "${name}" (is this checkpoint from another model?)`);
  const step = Number((readTensor(h, "step").data as BigInt64Array)[0]);
  // skipped steps (mixed precision) count in meta.json but not here: never more updates than steps
  if (!(step >= 0 && step <= metaStep))
    throw new InputError(
      `${file}: "step" is ${step}, but meta.json's step is ${metaStep}; the optimizer state does not belong to this checkpoint`,
    );
  opt.load((name) => readTensor(h, name).data as Float32Array, step);
}
