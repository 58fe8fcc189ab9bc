// RoPE (Su et al. 2021) in Hugging Face's rotate-half layout, so our checkpoints are LlamaForCausalLM
// checkpoints. inv_freq is computed on the host exactly as transformers does it in f32:
// 1 / theta^(2i/D). Positions come per token (they restart at document starts with a doc mask, and
// continue from the cache length when generating). Kernel: kernels/rope.wgsl.
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
): Float32Array {
  const f = invFreq(R, theta),
    half = R / 2,
    out = Float32Array.from(x);
  for (let t = 0; t < N; t++)
    for (let h = 0; h < NH; h++) {
      const base = (t * NH + h) * D + off;
      for (let i = 0; i < half; i++) {
        const ang = Math.fround(pos[t]! * f[i]!);
        const c = Math.cos(ang),
          s = sign * Math.sin(ang);
        const a = x[base + i]!,
          b = x[base + i + half]!;
        out[base + i] = a * c - b * s;
        out[base + i + half] = b * c + a * s;
      }
    }
  return out;
}

// ---- GPU ----
const freqCache = new Map<string, Tensor>();
function freqTensor(D: number, theta: number): Tensor {
  const key = `${D}|${theta}`;
  let t = freqCache.get(key);
  if (!t || t.disposed) freqCache.set(key, (t = keep(Tensor.from(invFreq(D, theta), [D / 2]))));
  return t;
}

function launch(x: Tensor, pos: Tensor, theta: number, sign: 1 | -1, R: number, off: number): Tensor {
  const [N, NH, D] = x.shape as [number, number, number];
  // dims outside the rotated range pass through: copy them first when there are any
  const out = R === D ? Tensor.empty(x.shape) : clone(x);
  dispatch(
    pipeline("rope", { SIGN: sign }),
    [x.buffer, pos.buffer, freqTensor(R, theta).buffer, out.buffer],
    [N, NH, D, R, off],
    strideGrid((N * NH * R) / 2),
  );
  return out;
}

/**
 * x: (N, NH, D) with N tokens; pos: (N) i32 positions. Rotates dims [offset, offset + dims) of each
 * head vector (default: all of it).
 */
export function rope(
  x: Tensor,
  pos: Tensor,
  theta: number,
  { offset = 0, dims }: { offset?: number; dims?: number } = {},
): Tensor {
  const D = x.shape[2]!;
  const R = dims ?? D - offset;
  if (x.shape.length !== 3 || R % 2 || offset + R > D)
    throw new Error(
      `rope: expected (tokens, heads, head_dim) with an even rotated range inside it, got [${x.shape}] rotating ${R} from ${offset}`,
    );
  if (pos.size !== x.shape[0] || pos.dtype !== "i32") throw new Error(`rope: need one i32 position per token`);
  const out = launch(x, pos, theta, 1, R, offset);
  return record(out, "rope", [x], (d) => [launch(d, pos, theta, -1, R, offset)]);
}
