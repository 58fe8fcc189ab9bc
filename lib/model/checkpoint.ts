// Model weights on disk: DIR/config.json (a Hugging Face LlamaConfig) and DIR/model.safetensors
// (HF Llama tensor names). Loading accepts any such directory, ours or one saved by transformers:
// F32, F16 and BF16 weights (converted to f32), a tied model without lm_head.weight.
import { existsSync, readFileSync, mkdirSync, writeFileSync, renameSync } from "node:fs";
import { join } from "node:path";
import { decoder, readHeader, readTensor, writeSafetensors, type SafetensorsHeader, type TensorData } from "../io/safetensors.ts";
import { InputError } from "../io/errors.ts";
import { Tensor } from "../tensor/tensor.ts";
import { keep } from "../tensor/scope.ts";
import { parseModelConfig, hfConfigJson, type ModelConfig } from "./config.ts";
import { fromNamed, namedParams, paramShapes, type ModelParams } from "./params.ts";

export function readModelConfig(dir: string): ModelConfig {
  const file = join(dir, "config.json");
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, "utf8"));
  } catch (e: any) {
    throw new InputError(`${file}: ${e.code === "ENOENT" ? "no config.json (not a model directory)" : `not valid JSON (${e.message})`}`);
  }
  return parseModelConfig(raw, file);
}

/** Weights of any floating-point dtype as f32 (F16/BF16 widen exactly; F64 rounds). */
export function toF32(t: TensorData, what: string): Float32Array {
  if (t.dtype === "F32") return t.data as Float32Array;
  if (!["F64", "F16", "BF16", "F8_E4M3", "F8_E5M2"].includes(t.dtype)) throw new InputError(`${what}: dtype ${t.dtype} is not a floating-point weight`);
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
  let map: Record<string, string>;
  try {
    map = JSON.parse(readFileSync(index, "utf8")).weight_map;
  } catch (e) {
    throw new InputError(`${index}: not valid JSON (${(e as Error).message})`);
  }
  if (!map || typeof map !== "object") throw new InputError(`${index}: no "weight_map"`);
  const headers = new Map<string, SafetensorsHeader>();
  for (const [name, file] of Object.entries(map)) {
    let h = headers.get(file);
    if (!h) headers.set(file, (h = readHeader(join(dir, file))));
    byName.set(name, h);
  }
  return byName;
}

/** Load config and weights; parameters are kept and require gradients (trainable). */
export function loadModel(dir: string): { config: ModelConfig; params: ModelParams } {
  const config = readModelConfig(dir);
  const files = modelFiles(dir);
  for (const [name] of paramShapes(config))
    if (!files.has(name)) throw new InputError(`${dir}: no tensor "${name}" in its weights (is this checkpoint from another model config?)`);
  const params = fromNamed(config, (name, shape) => {
    const h = files.get(name)!;
    const file = h.path;
    const t = readTensor(h, name);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]))
      throw new InputError(`${file}: "${name}" is [${t.shape}], config.json implies [${shape}]`);
    return keep(Tensor.from(toF32(t, `${file}: ${name}`), shape).param());
  });
  return { config, params };
}

/** Write config.json and model.safetensors (each atomically) into dir. */
export async function saveModel(dir: string, config: ModelConfig, params: ModelParams, metadata: Record<string, string> = {}): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const tensors: Record<string, TensorData> = {};
  for (const [name, t] of namedParams(params)) tensors[name] = { dtype: "F32", shape: [...t.shape], data: (await t.toArray()) as Float32Array };
  writeSafetensors(join(dir, "model.safetensors"), tensors, { format: "pt", ...metadata });
  const tmp = join(dir, `.config.json.${process.pid}.tmp`);
  writeFileSync(tmp, JSON.stringify(hfConfigJson(config), null, 2) + "\n");
  renameSync(tmp, join(dir, "config.json"));
}
