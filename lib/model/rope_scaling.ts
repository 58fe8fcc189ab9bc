// RoPE frequency tables for the `rope_scaling` settings that pretrained checkpoints carry in config.json,
// computed as Hugging Face transformers computes them (modeling_rope_utils.py), in f64 and rounded to
// f32 once (transformers rounds each step in f32; the difference is below 1e-6 relative):
//   linear (Chen et al. 2023, position interpolation): every frequency divided by factor
//   llama3 (Llama 3.1+): low frequencies divided by factor, high ones kept, a smooth ramp between
//   yarn (Peng et al. 2023, Qwen2.5/3, DeepSeek): frequencies blended between interpolated and kept by a
//     ramp over the dims, and cos/sin multiplied by an attention factor
// Others (dynamic NTK, longrope, mrope) are refused by name: their tables depend on the sequence
// length or on per-dim lists we do not implement.
import { InputError } from "../base/errors.ts";
import { invFreq, type RopeFreqs } from "../ops/rope.ts";

export type RopeScaling =
  | { type: "linear"; factor: number }
  | { type: "llama3"; factor: number; low: number; high: number; original: number }
  | {
      type: "yarn";
      factor: number;
      original: number | null;
      attentionFactor: number | null;
      betaFast: number;
      betaSlow: number;
      mscale: number | null;
      mscaleAllDim: number | null;
      truncate: boolean;
    };

const KEYS: Record<RopeScaling["type"], string[]> = {
  linear: ["factor"],
  llama3: ["factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"],
  yarn: [
    "factor",
    "original_max_position_embeddings",
    "attention_factor",
    "beta_fast",
    "beta_slow",
    "mscale",
    "mscale_all_dim",
    "truncate",
  ],
};

/** config.json's rope_scaling (null, or {rope_type | type, ...}); `where` names the file. */
export function parseRopeScaling(raw: unknown, where: string): RopeScaling | null {
  if (raw === null || raw === undefined) return null;
  const bad = (m: string) => new InputError(`${where}: rope_scaling${m}`);
  if (typeof raw !== "object" || Array.isArray(raw)) throw bad(": expected an object or null");
  const o = raw as Record<string, unknown>;
  const type = (o.rope_type ?? o.type) as string | undefined;
  if (type === "default" || type === undefined) {
    if (type === undefined && Object.keys(o).length) throw bad(" has no rope_type");
    return null;
  }
  if (!(type in KEYS))
    throw bad(`.rope_type ${JSON.stringify(type)} is not supported (linear, llama3 and yarn are; default: none)`);
  const t = type as RopeScaling["type"];
  for (const k of Object.keys(o))
    if (k !== "rope_type" && k !== "type" && !KEYS[t].includes(k))
      throw bad(`.${k} is not a ${t} setting bunlm implements, so it is refused rather than ignored`);
  const num = (k: string, required: boolean, min = 0): number | null => {
    const v = o[k];
    if (v === undefined || v === null) {
      if (required) throw bad(`.${k} is required for ${t}`);
      return null;
    }
    if (typeof v !== "number" || !Number.isFinite(v) || v <= min) throw bad(`.${k} must be a number above ${min}`);
    return v;
  };
  const factor = num("factor", true)!;
  if (t === "linear") return { type: t, factor };
  if (t === "llama3") {
    const low = num("low_freq_factor", true)!,
      high = num("high_freq_factor", true)!;
    if (high <= low) throw bad(".high_freq_factor must be above low_freq_factor");
    return { type: t, factor, low, high, original: num("original_max_position_embeddings", true)! };
  }
  if (o.truncate !== undefined && typeof o.truncate !== "boolean") throw bad(".truncate must be true or false");
  return {
    type: t,
    factor,
    original: num("original_max_position_embeddings", false),
    attentionFactor: num("attention_factor", false),
    betaFast: num("beta_fast", false) ?? 32,
    betaSlow: num("beta_slow", false) ?? 1,
    mscale: num("mscale", false, -1),
    mscaleAllDim: num("mscale_all_dim", false, -1),
    truncate: (o.truncate as boolean | undefined) ?? true,
  };
}

/** YaRN's magnitude correction for a context stretched by `scale`. */
export function yarnMscale(scale: number, mscale = 1): number {
  return scale <= 1 ? 1 : 0.1 * mscale * Math.log(scale) + 1;
}

/**
 * The frequencies of R rotated dims (base theta), scaled as `s` says; maxPositions is config.json's
 * max_position_embeddings (YaRN's original context when rope_scaling does not give one).
 */
export function scaledFreqs(
  R: number,
  theta: number,
  s: RopeScaling | null,
  maxPositions: number,
  interleaved = false,
): RopeFreqs {
  const plain = invFreq(R, theta);
  if (!s) return { invFreq: plain, scale: 1, interleaved };
  const out = new Float32Array(R / 2);
  let scale = 1;
  if (s.type === "linear") for (let i = 0; i < R / 2; i++) out[i] = plain[i]! / s.factor;
  else if (s.type === "llama3") {
    const lowWavelen = s.original / s.low,
      highWavelen = s.original / s.high;
    for (let i = 0; i < R / 2; i++) {
      const f = plain[i]!,
        wavelen = (2 * Math.PI) / f;
      if (wavelen < highWavelen) out[i] = f;
      else if (wavelen > lowWavelen) out[i] = f / s.factor;
      else {
        const smooth = (s.original / wavelen - s.low) / (s.high - s.low);
        out[i] = ((1 - smooth) * f) / s.factor + smooth * f;
      }
    }
  } else {
    const original = s.original ?? maxPositions;
    scale =
      s.attentionFactor ??
      (s.mscale && s.mscaleAllDim
        ? yarnMscale(s.factor, s.mscale) / yarnMscale(s.factor, s.mscaleAllDim)
        : yarnMscale(s.factor));
    // the dims that turn fewer than beta_slow / more than beta_fast times over the original context
    const dimOf = (rotations: number) => (R * Math.log(original / (rotations * 2 * Math.PI))) / (2 * Math.log(theta));
    let low = dimOf(s.betaFast),
      high = dimOf(s.betaSlow);
    if (s.truncate) (low = Math.floor(low)), (high = Math.ceil(high));
    low = Math.max(low, 0);
    high = Math.min(high, R - 1);
    if (low === high) high += 0.001;
    for (let i = 0; i < R / 2; i++) {
      const ramp = Math.min(1, Math.max(0, (i - low) / (high - low)));
      const keep = 1 - ramp; // 1: extrapolate (keep the frequency), 0: interpolate (divide by factor)
      const f = plain[i]!;
      out[i] = (f / s.factor) * (1 - keep) + f * keep;
    }
  }
  return { invFreq: out, scale, interleaved };
}
