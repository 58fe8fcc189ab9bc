// Model weights on disk: DIR/config.json (a Hugging Face config of one of the families in families.ts)
// and DIR/model.safetensors or its shards (HF tensor names). Loading accepts any such directory, ours
// or one saved by transformers: F32, F16 and BF16 weights (converted to f32), a tied model without
// lm_head.weight. Loading refuses what would train or generate garbage: files whose size or CRC-32
// differs from what the checkpoint's meta.json recorded, index entries outside the directory, and
// weights that hold NaN or Inf. Saving writes the weights in a dtype of the caller's choice (F32, BF16,
// F16) and a foreign config.json back as it was read; a training checkpoint saved in a narrower dtype
// keeps the f32 master weights in optimizer.safetensors ("master.NAME"), and loading prefers them, so
// a resume stays exact.
// For inference (generate, chat, eval), `weights: "stored"` keeps BF16/F16 matrices half-width on the
// device as the file holds them, uploaded without widening on the host: half the memory of f32, and
// the same results, since matmul and the embedding widen each value exactly as they load it.
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
import { Tensor, type HalfDType } from "../tensor/tensor.ts";
import { keep } from "../tensor/scope.ts";
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "../io/floats.ts";
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

/** The dtypes weights are saved in. */
export type WeightDtype = NonNullable<ModelConfig["stored_dtype"]>;
export const TORCH_DTYPE: Record<WeightDtype, string> = { F32: "float32", BF16: "bfloat16", F16: "float16" };

/** The u16 words of a 2-byte tensor (copied when the file placed it at an odd offset). */
function words(d: ArrayBufferView): Uint16Array {
  if (d.byteOffset % 2 === 0) return new Uint16Array(d.buffer, d.byteOffset, d.byteLength / 2);
  return new Uint16Array(new Uint8Array(d.buffer, d.byteOffset, d.byteLength).slice().buffer);
}

/** Weights of any floating-point dtype as f32 (F16/BF16 widen exactly; F64 rounds). */
export function toF32(t: TensorData, what: string): Float32Array {
  if (t.dtype === "F32") return t.data as Float32Array;
  if (t.dtype === "BF16") return bf16ToF32(words(t.data));
  if (t.dtype === "F16") return f16ToF32(words(t.data));
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

/**
 * The f32 master weights a training checkpoint saved in a narrower dtype keeps beside its optimizer
 * state: name → header of optimizer.safetensors holding "master.NAME" (empty when there are none).
 */
function masterWeights(dir: string): Map<string, SafetensorsHeader> {
  const file = join(dir, "optimizer.safetensors");
  const out = new Map<string, SafetensorsHeader>();
  if (!existsSync(file)) return out;
  verifyRecorded(dir, ["optimizer.safetensors"]);
  const h = readHeader(file);
  for (const t of h.tensors) if (t.name.startsWith("master.")) out.set(t.name.slice(7), h);
  return out;
}

/**
 * Where the weights live on the device: "f32" (trainable, the default) or "stored": BF16/F16 weight
 * matrices stay in that width for inference (not trainable); norms, biases, f32 tensors and
 * kv_b_proj (latent attention's decode kernel reads it as f32) are widened as usual.
 */
export type WeightsOnDevice = "f32" | "stored";

/** The matrices that only matmul (as B) and the embedding read, so that they may stay half-width. */
function halfReadable(name: string, shape: readonly number[]): boolean {
  return shape.length === 2 && !name.endsWith(".kv_b_proj.weight");
}

const HALF_OF: Partial<Record<string, HalfDType>> = { BF16: "bf16", F16: "f16" };

/** How many of n 16-bit floats (bf16 or f16 bits) are NaN or ±Inf: all exponent bits set. */
function countNonFiniteHalf(w: Uint16Array, dtype: HalfDType): number {
  const exp = dtype === "bf16" ? 0x7f80 : 0x7c00;
  let bad = 0;
  for (let i = 0; i < w.length; i++) if ((w[i]! & exp) === exp) bad++;
  return bad;
}

/**
 * Load config and weights. `dtype` is the one most weights were stored in (what saving back keeps by
 * default). With weights "f32" (the default) parameters are f32, kept and require gradients
 * (trainable); with "stored", BF16/F16 matrices stay half-width for inference (see WeightsOnDevice).
 */
export function loadModel(
  dir: string,
  opts: { weights?: WeightsOnDevice } = {},
): { config: ModelConfig; params: ModelParams; dtype: WeightDtype } {
  const stored = opts.weights === "stored";
  verifyRecorded(dir, ["config.json", "model.safetensors"]);
  const config = readModelConfig(dir);
  const files = modelFiles(dir);
  const masters = masterWeights(dir);
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
      const ht = readTensor(h, name),
        et = readTensor(files.get("model.embed_tokens.weight")!, "model.embed_tokens.weight");
      const bytes = (t: TensorData) => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
      // a saved copy of the tied head: the same bytes (a 150k vocabulary's head is 136M values)
      if (ht.dtype === et.dtype && Buffer.compare(bytes(ht), bytes(et)) === 0) continue;
      const head = toF32(ht, `${h.path}: ${name}`),
        emb = toF32(et, name);
      if (ht.dtype !== et.dtype && head.length === emb.length && head.every((x, i) => x === emb[i])) continue;
      throw new InputError(
        `${h.path}: "lm_head.weight" differs from "model.embed_tokens.weight", but config.json says tie_word_embeddings: true`,
      );
    }
    throw new InputError(
      `${h.path}: tensor "${name}" has no place in the model config.json describes; bunlm would have to drop it (is this another architecture?)`,
    );
  }
  const counts = new Map<string, number>();
  for (const [name, h] of files) {
    const d = h.tensors.find((t) => t.name === name)!.dtype;
    counts.set(d, (counts.get(d) ?? 0) + 1);
  }
  const most = [...counts].sort((a, b) => b[1] - a[1])[0]?.[0];
  const dtype: WeightDtype = most === "BF16" || most === "F16" ? most : "F32";
  const params = fromNamed(config, (name, shape) => {
    const master = masters.get(name);
    const h = master ?? files.get(name)!;
    const file = h.path;
    const t = readTensor(h, master ? `master.${name}` : name);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]))
      throw new InputError(`${file}: "${name}" is [${t.shape}], config.json implies [${shape}]`);
    const half = HALF_OF[t.dtype];
    if (stored && half && halfReadable(name, shape)) {
      // the file's 16-bit words go up as they are: no f32 copy on the host or the device
      const w = words(t.data);
      const bad = countNonFiniteHalf(w, half);
      if (bad)
        throw new InputError(
          `${file}: "${name}" holds ${bad} NaN/Inf values; these weights are not usable (bun cmd/ckpt-inspect.ts ${dir} --stats lists every such tensor)`,
        );
      return keep(Tensor.from(w, shape, half));
    }
    const data = toF32(t, `${file}: ${name}`);
    const bad = countNonFinite(data);
    if (bad)
      throw new InputError(
        `${file}: "${name}" holds ${bad} NaN/Inf values; these weights are not usable (bun cmd/ckpt-inspect.ts ${dir} --stats lists every such tensor)`,
      );
    return keep(Tensor.from(data, shape).param());
  });
  config.stored_dtype = dtype;
  return { config, params, dtype };
}

/** The weights as host arrays, by Hugging Face name. */
export async function modelTensors(params: ModelParams): Promise<Record<string, TensorData>> {
  const tensors: Record<string, TensorData> = {};
  for (const [name, t] of namedParams(params)) {
    // weights loaded half-width are for inference: their words are no f32 values to save
    if (t.dtype !== "f32")
      throw new Error(`${name} is ${t.dtype} on the device (loaded for inference); load it as f32 to save`);
    tensors[name] = { dtype: "F32", shape: [...t.shape], data: (await t.toArray()) as Float32Array };
  }
  return tensors;
}

/** f32 weights in another dtype (round to nearest even). */
export function castWeights(tensors: Record<string, TensorData>, dtype: WeightDtype): Record<string, TensorData> {
  if (dtype === "F32") return tensors;
  const out: Record<string, TensorData> = {};
  for (const [name, t] of Object.entries(tensors)) {
    const f = t.data as Float32Array;
    out[name] = { dtype, shape: t.shape, data: dtype === "BF16" ? f32ToBf16(f) : f32ToF16(f) };
  }
  return out;
}

/** Write config.json and model.safetensors (each atomically) into dir, weights as `dtype`; returns their sums. */
export function writeModel(
  dir: string,
  config: ModelConfig,
  tensors: Record<string, TensorData>,
  metadata: Record<string, string> = {},
  dtype: WeightDtype = "F32",
): FileSums {
  mkdirSync(dir, { recursive: true });
  const json = hfConfigJson(config, TORCH_DTYPE[dtype]);
  return {
    "model.safetensors": writeSafetensors(join(dir, "model.safetensors"), castWeights(tensors, dtype), {
      format: "pt",
      ...metadata,
    }),
    "config.json": writeFileAtomic(join(dir, "config.json"), JSON.stringify(json, null, 2) + "\n"),
  };
}

/** Save weights and config.json; by default in the dtype they were loaded in (F32 for a new model). */
export async function saveModel(
  dir: string,
  config: ModelConfig,
  params: ModelParams,
  metadata: Record<string, string> = {},
  dtype: WeightDtype = config.stored_dtype ?? "F32",
): Promise<FileSums> {
  return writeModel(dir, config, await modelTensors(params), metadata, dtype);
}
