// f32 ⇄ the half-width float formats checkpoints are shipped in (bf16: Llama 3, Qwen, DeepSeek; f16:
// older Llama and Mistral exports), whole arrays at a time: a 150k-vocabulary embedding holds 136M
// values, so per-element DataView calls would take seconds. Rounding to the narrower format is to
// nearest, ties to even, as PyTorch's .to(torch.bfloat16) / .half() do; NaN stays NaN.

/** bf16 bits (little-endian u16 array) → f32: the high half of each f32 (exact). */
export function bf16ToF32(src: Uint16Array): Float32Array {
  const out = new Uint32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = src[i]! << 16;
  return new Float32Array(out.buffer);
}

let F16_TABLE: Float32Array | null = null;

/** The value of f16 bits h (exact in a JS number). */
export function f16Value(h: number): number {
  const s = h & 0x8000 ? -1 : 1,
    e = (h >> 10) & 0x1f,
    m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? Number.NaN : s * Number.POSITIVE_INFINITY;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** f16 bits → f32 (exact), through a 64K-entry table. */
export function f16ToF32(src: Uint16Array): Float32Array {
  if (!F16_TABLE) {
    F16_TABLE = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) F16_TABLE[h] = f16Value(h);
  }
  const t = F16_TABLE,
    out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = t[src[i]!]!;
  return out;
}

/** f32 → bf16 bits, round to nearest even. */
export function f32ToBf16(src: Float32Array): Uint16Array {
  const u = new Uint32Array(src.buffer, src.byteOffset, src.length),
    out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const x = u[i]!;
    if ((x & 0x7fffffff) > 0x7f800000)
      out[i] = (x >>> 16) | 0x40; // NaN: keep it a (quiet) NaN
    else out[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
  }
  return out;
}

/** f32 → f16 bits, round to nearest even; overflow goes to ±Inf, tiny values to subnormals or 0. */
export function f32ToF16(src: Float32Array): Uint16Array {
  const u = new Uint32Array(src.buffer, src.byteOffset, src.length),
    out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const x = u[i]!;
    const sign = (x >>> 16) & 0x8000;
    const e = (x >>> 23) & 0xff,
      m = x & 0x7fffff;
    if (e === 0xff) {
      out[i] = sign | 0x7c00 | (m ? 0x200 : 0);
      continue;
    }
    const he = e - 127 + 15;
    if (he >= 31) {
      out[i] = sign | 0x7c00;
      continue;
    }
    if (he <= 0) {
      if (he < -10) {
        out[i] = sign;
        continue;
      }
      // subnormal: shift the full mantissa (with its hidden bit) right, rounding to nearest even
      const full = m | 0x800000,
        shift = 14 - he;
      const half = 1 << (shift - 1);
      const rest = full & ((1 << shift) - 1);
      let v = full >>> shift;
      if (rest > half || (rest === half && v & 1)) v++;
      out[i] = sign | v;
      continue;
    }
    let v = (he << 10) | (m >>> 13);
    const rest = m & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && v & 1)) v++; // may carry into the exponent: correct, up to Inf
    out[i] = sign | v;
  }
  return out;
}
