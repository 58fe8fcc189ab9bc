// LoRA (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models") as PEFT's LoraLayer
// computes it (huggingface/peft, src/peft/tuners/lora/layer.py): a frozen projection W (out, in) gets a
// trainable low-rank path beside it,
//   y = x·Wᵀ + (α/r)·(x·Aᵀ)·Bᵀ,   A (r, in) Kaiming-uniform (a = √5, so U(±1/√in)), B (out, r) zeros,
// so a run starts from exactly the base model. Only A and B take gradients and optimizer state: the
// base weights are marked frozen, so backward allocates no gradient for them (the memory LoRA saves).
// Adapters hang off the weight tensors in a WeakMap that transformer.ts's `linear` consults, so every
// path (training, generation, GRPO's sampling) sees them; swiglu.ts's fused MLP leaves its fused path
// for an adapted weight through the hook registered below. A view of a weight is another Tensor, so
// it carries no adapter: `baseView` is the base model without a second copy (DPO's reference).
// On disk: PEFT's layout, adapter_model.safetensors (base_model.model.<HF name>.lora_A.weight, …) and
// adapter_config.json, whose base_model_name_or_path names the base directory.
import { copyFileSync, existsSync, mkdirSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import * as v from "valibot";
import { InputError } from "../base/errors.ts";
import { Rng } from "../base/rng.ts";
import { fileSum, readJsonObject, writeFileAtomic } from "../io/files.ts";
import { readHeader, readTensor, writeSafetensors, type TensorData } from "../io/safetensors.ts";
import type { FileSum } from "../io/checksum.ts";
import { Tensor } from "../tensor/tensor.ts";
import { keep } from "../tensor/scope.ts";
import { matmul, scale } from "../ops/index.ts";
import { setAdaptedLinear } from "../ops/swiglu.ts";
import { bf16ToF32, f16ToF32 } from "../io/floats.ts";
import { LAYER_NAMES, disposeParams, namedParams, type LayerKey, type ModelParams } from "./params.ts";
import { loadModel, modelTensors, writeModel, type FileSums, type WeightDtype } from "./checkpoint.ts";

/** The projections an adapter may sit on (PEFT's target_modules names). */
export const LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"] as const;
export type LoraTarget = (typeof LORA_TARGETS)[number];

export const ADAPTER_CONFIG = "adapter_config.json";
export const ADAPTER_MODEL = "adapter_model.safetensors";

export interface LoraSpec {
  rank: number;
  alpha: number;
  targets: LoraTarget[];
}

export interface Adapter {
  A: Tensor; // (r, in)
  B: Tensor; // (out, r)
  /** α / r */
  scale: number;
}

/** Adapters attached to a model: PEFT name → tensor (A and B, in a fixed order), and the spec. */
export interface Lora {
  spec: LoraSpec;
  named: Map<string, Tensor>;
  /** the adapted weights, by HF name */
  weights: Map<string, Tensor>;
}

const adapters = new WeakMap<Tensor, Adapter>();

export function adapterOf(w: Tensor): Adapter | undefined {
  return adapters.get(w);
}

/** x·Wᵀ + (α/r)·(x·Aᵀ)·Bᵀ (+ residual): the base product, then the low-rank one accumulated onto it. */
export function adaptedLinear(x: Tensor, w: Tensor, a: Adapter, residual?: Tensor): Tensor {
  const y = matmul(x, w, { transB: true, residual });
  // the scale goes on the (n, r) product: the narrowest tensor of the path
  const xa = scale(matmul(x, a.A, { transB: true }), a.scale); // (n, r)
  return matmul(xa, a.B, { transB: true, residual: y });
}

/** y = x·Wᵀ (+ residual), with W's adapter when it has one. */
export function loraLinear(x: Tensor, w: Tensor, residual?: Tensor): Tensor {
  const a = adapters.get(w);
  return a ? adaptedLinear(x, w, a, residual) : matmul(x, w, { transB: true, residual });
}

setAdaptedLinear({ has: (w) => adapters.has(w), linear: loraLinear });

/** PEFT's tensor name of an adapter matrix for the HF weight `name` (model.layers.0.self_attn.q_proj.weight). */
export function peftName(name: string, which: "A" | "B"): string {
  return `base_model.model.${name.replace(/\.weight$/, `.lora_${which}.weight`)}`;
}

/** The weights the spec adapts, in model order: [HF name, weight tensor]. */
function targetWeights(p: ModelParams, targets: readonly LoraTarget[]): [string, Tensor][] {
  const out: [string, Tensor][] = [];
  const seen = new Set<LoraTarget>();
  p.layers.forEach((L, l) => {
    for (const k of LORA_TARGETS) {
      if (!targets.includes(k) || !L[k as LayerKey]) continue;
      seen.add(k);
      out.push([`model.layers.${l}.${LAYER_NAMES[k as LayerKey]}`, L[k as LayerKey]!]);
    }
  });
  const missing = targets.filter((t) => !seen.has(t));
  if (missing.length)
    throw new InputError(
      `--lora-targets: this model has no ${missing.join(", ")} (latent attention has no k_proj/v_proj; q_proj only without q_lora_rank)`,
    );
  return out;
}

/**
 * Attach adapters to every target weight of p and freeze all of p. `values` gives the adapters'
 * values by PEFT name (a saved adapter); without it A is Kaiming-uniform from `seed` and B zero.
 */
export function attachLora(
  p: ModelParams,
  spec: LoraSpec,
  seed: number,
  values?: (name: string, shape: number[]) => Float32Array,
): Lora {
  const targets = targetWeights(p, spec.targets);
  for (const t of namedParams(p).values()) t.requiresGrad = false;
  const rng = new Rng(seed);
  const r = spec.rank;
  const named = new Map<string, Tensor>();
  const weights = new Map<string, Tensor>();
  for (const [name, w] of targets) {
    if (adapters.has(w)) throw new Error(`${name} has an adapter already`);
    const [out, inp] = w.shape as [number, number];
    const nameA = peftName(name, "A"),
      nameB = peftName(name, "B");
    let a: Float32Array, b: Float32Array;
    if (values) {
      a = values(nameA, [r, inp]);
      b = values(nameB, [out, r]);
    } else {
      // kaiming_uniform_(a=√5): gain √(2/(1+5)), bound gain·√(3/fan_in) = 1/√in
      const bound = 1 / Math.sqrt(inp);
      a = Float32Array.from({ length: r * inp }, () => (2 * rng.next() - 1) * bound);
      b = new Float32Array(out * r);
    }
    const A = keep(Tensor.from(a, [r, inp]).param());
    const B = keep(Tensor.from(b, [out, r]).param());
    adapters.set(w, { A, B, scale: spec.alpha / r });
    named.set(nameA, A);
    named.set(nameB, B);
    weights.set(name, w);
  }
  return { spec, named, weights };
}

/** Take the adapters off (the weights become the plain base again) and free them. */
export function detachLora(lora: Lora): void {
  for (const w of lora.weights.values()) adapters.delete(w);
  for (const t of lora.named.values()) {
    t.grad?.dispose();
    t.dispose();
  }
}

/** The base model alone: views of the same buffers (no copy), which carry no adapters and no gradients. */
export function baseView(p: ModelParams): ModelParams {
  const view = (t: Tensor) => keep(Tensor.view(t, t.shape));
  return {
    embed_tokens: view(p.embed_tokens),
    layers: p.layers.map((L) => {
      const out = {} as Record<string, Tensor>;
      for (const [k, t] of Object.entries(L)) if (t) out[k] = view(t);
      return out as unknown as ModelParams["layers"][number];
    }),
    norm: view(p.norm),
    lm_head: p.lm_head ? view(p.lm_head) : null,
  };
}

/**
 * W + (α/r)·B·A for every adapted weight, on the host in f64 then rounded to f32: the merged
 * weights by HF name, to replace the base's in its tensors.
 */
export async function mergedWeights(lora: Lora): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  const s = lora.spec.alpha / lora.spec.rank;
  for (const [name, w] of lora.weights) {
    if (w.dtype !== "f32") throw new Error(`${name}: load the base as f32 to merge`);
    const a = adapters.get(w)!;
    const [O, I] = w.shape as [number, number];
    const r = lora.spec.rank;
    const W = (await w.toArray()) as Float32Array,
      A = (await a.A.toArray()) as Float32Array,
      B = (await a.B.toArray()) as Float32Array;
    const m = new Float32Array(O * I);
    for (let o = 0; o < O; o++)
      for (let i = 0; i < I; i++) {
        let acc = 0;
        for (let k = 0; k < r; k++) acc += B[o * r + k]! * A[k * I + i]!;
        m[o * I + i] = W[o * I + i]! + s * acc;
      }
    out.set(name, m);
  }
  return out;
}

// ---- adapter_config.json and adapter_model.safetensors ----

const AdapterConfigSchema = v.object({
  peft_type: v.literal("LORA", 'expected "LORA"'),
  r: v.pipe(v.number(), v.safeInteger(), v.minValue(1)),
  lora_alpha: v.pipe(v.number(), v.finite(), v.gtValue(0)),
  target_modules: v.union([v.array(v.picklist(LORA_TARGETS)), v.picklist(LORA_TARGETS)]),
  base_model_name_or_path: v.nullish(v.string()),
  // what bunlm does not implement is refused rather than run differently
  lora_dropout: v.optional(v.literal(0, "bunlm has no dropout: expected 0")),
  bias: v.optional(v.literal("none", 'expected "none" (bunlm trains no biases in adapters)')),
  fan_in_fan_out: v.optional(v.literal(false, "expected false")),
  use_rslora: v.optional(v.literal(false, "expected false (rsLoRA scales by α/√r)")),
  use_dora: v.optional(v.literal(false, "expected false (DoRA is not implemented)")),
  rank_pattern: v.optional(v.record(v.string(), v.never("per-module ranks are not supported"))),
  alpha_pattern: v.optional(v.record(v.string(), v.never("per-module alphas are not supported"))),
});

export interface AdapterInfo {
  spec: LoraSpec;
  /** the base directory, resolved (relative paths against the adapter's directory) */
  base: string | null;
}

export function isAdapterDir(dir: string): boolean {
  return existsSync(join(dir, ADAPTER_CONFIG));
}

export function readAdapterConfig(dir: string): AdapterInfo {
  const file = join(dir, ADAPTER_CONFIG);
  const raw = readJsonObject(file, "no adapter_config.json (not a LoRA adapter directory)");
  const r = v.safeParse(AdapterConfigSchema, raw);
  if (!r.success) {
    const i = r.issues[0]!;
    const key = i.path?.map((p: any) => p.key).join(".") ?? "";
    throw new InputError(`${file}: ${key ? `"${key}" ` : ""}${i.message}`);
  }
  const c = r.output;
  const targets = Array.isArray(c.target_modules) ? c.target_modules : [c.target_modules];
  const b = c.base_model_name_or_path;
  const base = !b ? null : isAbsolute(b) ? b : existsSync(join(dir, b)) ? resolve(dir, b) : resolve(b);
  return { spec: { rank: c.r, alpha: c.lora_alpha, targets: LORA_TARGETS.filter((t) => targets.includes(t)) }, base };
}

/** adapter_config.json as PEFT writes it, for a CAUSAL_LM adapter on `base`. */
export function adapterConfigJson(spec: LoraSpec, base: string): Record<string, unknown> {
  return {
    peft_type: "LORA",
    task_type: "CAUSAL_LM",
    base_model_name_or_path: base,
    r: spec.rank,
    lora_alpha: spec.alpha,
    lora_dropout: 0,
    target_modules: [...spec.targets],
    bias: "none",
    fan_in_fan_out: false,
    init_lora_weights: true,
    use_rslora: false,
    use_dora: false,
    inference_mode: true,
    modules_to_save: null,
    layers_to_transform: null,
    layers_pattern: null,
    rank_pattern: {},
    alpha_pattern: {},
    revision: null,
  };
}

/** The adapters' values as host arrays, by PEFT name. */
export async function adapterTensors(lora: Lora): Promise<Record<string, TensorData>> {
  const out: Record<string, TensorData> = {};
  for (const [name, t] of lora.named)
    out[name] = { dtype: "F32", shape: [...t.shape], data: (await t.toArray()) as Float32Array };
  return out;
}

/** Write adapter_model.safetensors and adapter_config.json into dir; returns their sums. */
export function writeAdapter(
  dir: string,
  spec: LoraSpec,
  tensors: Record<string, TensorData>,
  base: string,
): Record<string, FileSum> {
  mkdirSync(dir, { recursive: true });
  return {
    [ADAPTER_MODEL]: writeSafetensors(join(dir, ADAPTER_MODEL), tensors, { format: "pt" }),
    [ADAPTER_CONFIG]: writeFileAtomic(
      join(dir, ADAPTER_CONFIG),
      JSON.stringify(adapterConfigJson(spec, base), null, 2) + "\n",
    ),
  };
}

/** Attach the adapters saved in dir to p (which must be the model they were trained on). */
export function loadAdapter(dir: string, p: ModelParams, info: AdapterInfo = readAdapterConfig(dir)): Lora {
  const file = join(dir, ADAPTER_MODEL);
  if (!existsSync(file)) throw new InputError(`${dir}: no ${ADAPTER_MODEL}`);
  const h = readHeader(file);
  const byName = new Map(h.tensors.map((t) => [t.name, t]));
  const used = new Set<string>();
  const lora = attachLora(p, info.spec, 0, (name, shape) => {
    const t = byName.get(name);
    if (!t) throw new InputError(`${file}: no tensor "${name}" (is this adapter for another model?)`);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]))
      throw new InputError(`${file}: "${name}" is [${t.shape}], the model needs [${shape}] (another model or rank?)`);
    if (t.dtype !== "F32" && t.dtype !== "BF16" && t.dtype !== "F16")
      throw new InputError(`${file}: "${name}" is ${t.dtype}, expected a float dtype`);
    used.add(name);
    const data = readTensor(h, name);
    return toF32Adapter(data);
  });
  for (const name of byName.keys())
    if (!used.has(name)) {
      detachLora(lora);
      throw new InputError(`${file}: tensor "${name}" has no place in this model's adapters`);
    }
  return lora;
}

function toF32Adapter(t: TensorData): Float32Array {
  if (t.dtype === "F32") return t.data as Float32Array;
  const words = new Uint16Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.byteLength));
  return t.dtype === "BF16" ? bf16ToF32(words) : f16ToF32(words);
}

/** The base directory an adapter directory names, checked to exist. */
export function adapterBase(dir: string, info: AdapterInfo = readAdapterConfig(dir)): string {
  if (!info.base)
    throw new InputError(`${join(dir, ADAPTER_CONFIG)}: no base_model_name_or_path; give the base with --ckpt/--base`);
  if (!existsSync(join(info.base, "config.json")))
    throw new InputError(`${join(dir, ADAPTER_CONFIG)}: its base ${info.base} is not a model directory (moved?)`);
  return info.base;
}

// ---- merging ----

/** The files `bunlm merge` writes: a model directory generate, chat, eval and transformers load as is. */
export const MERGED_FILES = [
  "config.json",
  "model.safetensors",
  "tokenizer.json",
  "tokenizer_config.json",
  "generation_config.json",
];

/**
 * base + adapter → one model in the base's layout and dtype: W + (α/r)·B·A for each adapted weight,
 * every other tensor as the base has it; the tokenizer and generation config come along from the
 * base (or the adapter's directory, which a training run fills). `base` null: the one adapter_config.json names.
 */
export async function mergeAdapter(
  base: string | null,
  adapter: string,
  out: string,
): Promise<{ base: string; dtype: WeightDtype; merged: number; files: FileSums }> {
  const info = readAdapterConfig(adapter);
  const baseDir = base ?? adapterBase(adapter, info);
  const { config, params, dtype } = loadModel(baseDir);
  const lora = loadAdapter(adapter, params, info);
  const merged = await mergedWeights(lora);
  detachLora(lora);
  const tensors = await modelTensors(params);
  disposeParams(params);
  for (const [name, m] of merged) tensors[name] = { dtype: "F32", shape: tensors[name]!.shape, data: m };
  const files = writeModel(out, config, tensors, { merged_adapter: resolve(adapter) }, dtype);
  for (const f of MERGED_FILES.slice(2)) {
    const from = [baseDir, adapter].map((d) => join(d, f)).find((p) => existsSync(p));
    if (from) {
      copyFileSync(from, join(out, f));
      files[f] = fileSum(join(out, f));
    }
  }
  return { base: baseDir, dtype, merged: merged.size, files };
}
