// RoPE (Su et al. 2021) in Hugging Face's rotate-half layout (Llama, Qwen, Mistral) or on interleaved
// pairs (DeepSeek-V2's checkpoints). The frequencies are a table computed on the host: plain
// 1 / theta^(2i/D) as transformers computes it in f32, or a scaled one (lib/model/rope_scaling.ts),
// with an attention factor that multiplies cos and sin (YaRN). Positions come per token (they restart
// at document starts with a doc mask, and continue from the cache length when generating).
// Kernel: kernels/rope.wgsl.
import { pipeline, dispatch } from "../gpu/index.ts";
import { Tensor } from "../tensor/tensor.ts";
import { record } from "../tensor/autograd.ts";
import { keep } from "../tensor/scope.ts";
import { strideGrid } from "../gpu/grid.ts";
import { clone } from "./elementwise.ts";

export function invFreq(D: number, theta: number): Float32Array {
  const out = new Float32Array(D / 2);
  for (let i = 0; i < D / 2; i++) out[i] = Math.fround(1 / Math.fround(theta ** Math.fround((2 * i) / D)));
  return out;
}

/** What a rotation needs besides positions: the frequencies, the cos/sin factor, the pairing. */
export interface RopeFreqs {
  invFreq: Float32Array;
  /** multiplies cos and sin (YaRN's attention factor); 1 for plain RoPE */
  scale: number;
  /** pairs (2i, 2i+1) instead of (i, i + R/2) */
  interleaved: boolean;
}

export const plainFreqs = (R: number, theta: number): RopeFreqs => ({
  invFreq: invFreq(R, theta),
  scale: 1,
  interleaved: false,
});

// ---- CPU reference ----
/** Rotates dims [off, off + R) of every head vector (R = D, off = 0: the whole vector, as Llama). */
export function ropeRef(
  x: Float32Array,
  pos: ArrayLike<number>,
  N: number,
  NH: number,
  D: number,
  theta: number,
  sign = 1,
  R = D,
  off = 0,
  freqs: RopeFreqs = plainFreqs(R, theta),
): Float32Array {
  const f = freqs.invFreq,
    half = R / 2,
    out = Float32Array.from(x);
  for (let t = 0; t < N; t++)
    for (let h = 0; h < NH; h++) {
      const base = (t * NH + h) * D + off;
      for (let i = 0; i < half; i++) {
        const ang = Math.fround(pos[t]! * f[i]!);
        const c = Math.cos(ang) * freqs.scale,
          s = sign * Math.sin(ang) * freqs.scale;
        const ia = freqs.interleaved ? base + 2 * i : base + i,
          ib = freqs.interleaved ? ia + 1 : base + i + half;
        const a = x[ia]!,
          b = x[ib]!;
        out[ia] = a * c - b * s;
        out[ib] = b * c + a * s;
      }
    }
  return out;
}

// ---- GPU ----
// one device copy per table (a model's layers share theirs)
const freqCache = new WeakMap<Float32Array, Tensor>();
function freqTensor(f: Float32Array): Tensor {
  let t = freqCache.get(f);
  if (!t || t.disposed) freqCache.set(f, (t = keep(Tensor.from(f, [f.length]))));
  return t;
}

function launch(x: Tensor, pos: Tensor, f: RopeFreqs, sign: 1 | -1, R: number, off: number): Tensor {
  const [N, NH, D] = x.shape as [number, number, number];
  // dims outside the rotated range pass through: copy them first when there are any
  const out = R === D ? Tensor.empty(x.shape) : clone(x);
  dispatch(
    pipeline("rope", { SIGN: sign, INTERLEAVED: f.interleaved }),
    [x.buffer, pos.buffer, freqTensor(f.invFreq).buffer, out.buffer],
    [N, NH, D, R, off, [f.scale, "f32"]],
    strideGrid((N * NH * R) / 2),
  );
  return out;
}

const plainCache = new Map<string, RopeFreqs>();
function plain(R: number, theta: number): RopeFreqs {
  const key = `${R}|${theta}`;
  let f = plainCache.get(key);
  if (!f) plainCache.set(key, (f = plainFreqs(R, theta)));
  return f;
}

/**
 * x: (N, NH, D) with N tokens; pos: (N) i32 positions. Rotates dims [offset, offset + dims) of each
 * head vector (default: all of it) by the frequencies given, or plain RoPE's of base theta.
 */
export function rope(
  x: Tensor,
  pos: Tensor,
  freqs: number | RopeFreqs,
  { offset = 0, dims }: { offset?: number; dims?: number } = {},
): Tensor {
  const D = x.shape[2]!;
  const R = dims ?? D - offset;
  if (x.shape.length !== 3 || R % 2 || offset + R > D)
    throw new Error(
      `rope: expected (tokens, heads, head_dim) with an even rotated range inside it, got [${x.shape}] rotating ${R} from ${offset}`,
    );
  if (pos.size !== x.shape[0] || pos.dtype !== "i32") throw new Error(`rope: need one i32 position per token`);
  const f = typeof freqs === "number" ? plain(R, freqs) : freqs;
  if (f.invFreq.length !== R / 2) throw new Error(`rope: ${f.invFreq.length} frequencies for ${R} rotated dims`);
  const out = launch(x, pos, f, 1, R, offset);
  return record(out, "rope", [x], (d) => [launch(d, pos, f, -1, R, offset)]);
}
