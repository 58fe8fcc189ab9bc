// Model weights on disk: DIR/config.json (a Hugging Face LlamaConfig) and DIR/model.safetensors
// (HF Llama tensor names). Loading accepts any such directory, ours or one saved by transformers:
// F32, F16 and BF16 weights (converted to f32), a tied model without lm_head.weight. Loading refuses
// what would train or generate garbage: files whose size or CRC-32 differs from what the checkpoint's
// meta.json recorded, index entries outside the directory, and weights that hold NaN or Inf.
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import * as v from "valibot";
import {
  decoder,
  readHeader,
  readTensor,
  writeSafetensors,
  type SafetensorsHeader,
  type TensorData,
} from "../io/safetensors.ts";
import { InputError } from "../base/errors.ts";
import { plainName, readJson, readJsonObject, verifyFile, writeFileAtomic } from "../io/files.ts";
import type { FileSum } from "../io/checksum.ts";
import { Tensor } from "../tensor/tensor.ts";
import { keep } from "../tensor/scope.ts";
import { parseModelConfig, hfConfigJson, type ModelConfig } from "./config.ts";
import { fromNamed, namedParams, paramShapes, type ModelParams } from "./params.ts";

export function readModelConfig(dir: string): ModelConfig {
  const file = join(dir, "config.json");
  return parseModelConfig(readJson(file, "no config.json (not a model directory)"), file);
}

const SumSchema = v.object({
  bytes: v.pipe(v.number(), v.integer(), v.minValue(0)),
  crc32: v.pipe(v.string(), v.regex(/^[0-9a-f]{8}$/)),
});
export const FileSumsSchema = v.record(v.string(), SumSchema);
export type FileSums = Record<string, FileSum>;

/**
 * The file sums a training checkpoint's meta.json recorded ({} for a directory without meta.json,
 * such as a model saved by transformers, or a checkpoint written before sums existed).
 */
export function recordedSums(dir: string): FileSums {
  const file = join(dir, "meta.json");
  if (!existsSync(file)) return {};
  const files = readJsonObject(file).files;
  if (files === undefined) return {};
  const r = v.safeParse(FileSumsSchema, files);
  if (!r.success) throw new InputError(`${file}: "files" must map file names to {bytes, crc32}`);
  return r.output;
}

/** Check each of `names` in dir against its recorded sum (names without one pass). */
export function verifyRecorded(dir: string, names: string[], sums: FileSums = recordedSums(dir)): void {
  for (const name of names) {
    const want = sums[name];
    if (want) verifyFile(join(dir, name), want, join(dir, "meta.json"));
  }
}

/** Weights of any floating-point dtype as f32 (F16/BF16 widen exactly; F64 rounds). */
export function toF32(t: TensorData, what: string): Float32Array {
  if (t.dtype === "F32") return t.data as Float32Array;
  if (!["F64", "F16", "BF16", "F8_E4M3", "F8_E5M2"].includes(t.dtype))
    throw new InputError(`${what}: dtype ${t.dtype} is not a floating-point weight`);
  const d = t.data;
  const get = decoder(t.dtype, new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
  const n = t.shape.reduce((a, b) => a * b, 1);
  return Float32Array.from({ length: n }, (_, i) => get(i));
}

/**
 * The safetensors files of a model directory: model.safetensors, or the shards a
 * model.safetensors.index.json lists (how transformers saves large models). Returns name → header.
 */
export function modelFiles(dir: string): Map<string, SafetensorsHeader> {
  const single = join(dir, "model.safetensors");
  const index = join(dir, "model.safetensors.index.json");
  const byName = new Map<string, SafetensorsHeader>();
  if (existsSync(single)) {
    const h = readHeader(single);
    for (const t of h.tensors) byName.set(t.name, h);
    return byName;
  }
  if (!existsSync(index)) throw new InputError(`${dir}: no model.safetensors (nor model.safetensors.index.json)`);
  const map = readJsonObject(index).weight_map as Record<string, unknown>;
  if (!map || typeof map !== "object" || Array.isArray(map)) throw new InputError(`${index}: no "weight_map" object`);
  const headers = new Map<string, SafetensorsHeader>();
  for (const [name, entry] of Object.entries(map)) {
    // shards live beside the index: a "../" entry would read another model's (or any) file
    const file = plainName(entry, index);
    let h = headers.get(file);
    if (!h) headers.set(file, (h = readHeader(join(dir, file))));
    byName.set(name, h);
  }
  return byName;
}

/** How many elements of x are NaN or ±Inf. */
export function countNonFinite(x: Float32Array): number {
  let bad = 0;
  // x·0 is 0 for every finite x and NaN otherwise: one multiply-add per element on the fast path
  let probe = 0;
  for (let i = 0; i < x.length; i++) probe += x[i]! * 0;
  if (probe === 0) return 0;
  for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i]!)) bad++;
  return bad;
}

/** Load config and weights; parameters are kept and require gradients (trainable). */
export function loadModel(dir: string): { config: ModelConfig; params: ModelParams } {
  verifyRecorded(dir, ["config.json", "model.safetensors"]);
  const config = readModelConfig(dir);
  const files = modelFiles(dir);
  const shapes = paramShapes(config);
  for (const [name] of shapes)
    if (!files.has(name))
      throw new InputError(
        `${dir}: no tensor "${name}" in its weights (is this checkpoint from another model config?)`,
      );
  // a weight the config has no place for (a bias, an expert) would be dropped and a different model run
  const wanted = new Set(shapes.map(([n]) => n));
  for (const [name, h] of files) {
    if (wanted.has(name) || /\.rotary_emb\.inv_freq$/.test(name)) continue; // RoPE's table, recomputed
    if (name === "lm_head.weight" && config.tie_word_embeddings) {
      const head = toF32(readTensor(h, name), `${h.path}: ${name}`),
        emb = toF32(readTensor(files.get("model.embed_tokens.weight")!, "model.embed_tokens.weight"), name);
      if (head.length === emb.length && head.every((x, i) => x === emb[i])) continue; // a saved copy of the tied head
      throw new InputError(
        `${h.path}: "lm_head.weight" differs from "model.embed_tokens.weight", but config.json says tie_word_embeddings: true`,
      );
    }
    throw new InputError(
      `${h.path}: tensor "${name}" has no place in the model config.json describes; bunlm would have to drop it (is this another architecture?)`,
    );
  }
  const params = fromNamed(config, (name, shape) => {
    const h = files.get(name)!;
    const file = h.path;
    const t = readTensor(h, name);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]))
      throw new InputError(`${file}: "${name}" is [${t.shape}], config.json implies [${shape}]`);
    const data = toF32(t, `${file}: ${name}`);
    const bad = countNonFinite(data);
    if (bad)
      throw new InputError(
        `${file}: "${name}" holds ${bad} NaN/Inf values; these weights are not usable (bun cmd/ckpt-inspect.ts ${dir} --stats lists every such tensor)`,
      );
    return keep(Tensor.from(data, shape).param());
  });
  return { config, params };
}

/** The weights as host arrays, by Hugging Face name. */
export async function modelTensors(params: ModelParams): Promise<Record<string, TensorData>> {
  const tensors: Record<string, TensorData> = {};
  for (const [name, t] of namedParams(params))
    tensors[name] = { dtype: "F32", shape: [...t.shape], data: (await t.toArray()) as Float32Array };
  return tensors;
}

/** Write config.json and model.safetensors (each atomically) into dir; returns their sums. */
export function writeModel(
  dir: string,
  config: ModelConfig,
  tensors: Record<string, TensorData>,
  metadata: Record<string, string> = {},
): FileSums {
  mkdirSync(dir, { recursive: true });
  return {
    "model.safetensors": writeSafetensors(join(dir, "model.safetensors"), tensors, { format: "pt", ...metadata }),
    "config.json": writeFileAtomic(join(dir, "config.json"), JSON.stringify(hfConfigJson(config), null, 2) + "\n"),
  };
}

export async function saveModel(
  dir: string,
  config: ModelConfig,
  params: ModelParams,
  metadata: Record<string, string> = {},
): Promise<FileSums> {
  return writeModel(dir, config, await modelTensors(params), metadata);
}
