// RoPE (Su et al. 2021) in Hugging Face's rotate-half layout, so our checkpoints are LlamaForCausalLM
// checkpoints. inv_freq is computed on the host exactly as transformers does it in f32:
// 1 / theta^(2i/D). Positions come per token (they restart at document starts with a doc mask, and
// continue from the cache length when generating). Kernel: kernels/rope.wgsl.
import { pipeline, dispatch } from "../gpu/index.ts";
import { Tensor } from "../tensor/tensor.ts";
import { record } from "../tensor/autograd.ts";
import { keep } from "../tensor/scope.ts";
import { strideGrid } from "./launch.ts";

export function invFreq(D: number, theta: number): Float32Array {
  const out = new Float32Array(D / 2);
  for (let i = 0; i < D / 2; i++) out[i] = Math.fround(1 / Math.fround(Math.pow(theta, Math.fround((2 * i) / D))));
  return out;
}

// ---- CPU reference ----
export function ropeRef(x: Float32Array, pos: ArrayLike<number>, N: number, NH: number, D: number, theta: number, sign = 1): Float32Array {
  const f = invFreq(D, theta), half = D / 2, out = new Float32Array(x.length);
  for (let t = 0; t < N; t++)
    for (let h = 0; h < NH; h++) {
      const base = (t * NH + h) * D;
      for (let i = 0; i < half; i++) {
        const ang = Math.fround(pos[t]! * f[i]!);
        const c = Math.cos(ang), s = sign * Math.sin(ang);
        const a = x[base + i]!, b = x[base + i + half]!;
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

function launch(out: Tensor, x: Tensor, pos: Tensor, theta: number, sign: 1 | -1): Tensor {
  const [N, NH, D] = x.shape as [number, number, number];
  dispatch(pipeline("rope", { SIGN: sign }), [x.buffer, pos.buffer, freqTensor(D, theta).buffer, out.buffer], [N, NH, D], strideGrid((N * NH * D) / 2));
  return out;
}

/** x: (N, NH, D) with N tokens; pos: (N) i32 positions. */
export function rope(x: Tensor, pos: Tensor, theta: number): Tensor {
  if (x.shape.length !== 3 || x.shape[2]! % 2) throw new Error(`rope: expected (tokens, heads, even head_dim), got [${x.shape}]`);
  if (pos.size !== x.shape[0] || pos.dtype !== "i32") throw new Error(`rope: need one i32 position per token`);
  const out = launch(Tensor.empty(x.shape), x, pos, theta, 1);
  return record(out, "rope", [x], (d) => [launch(Tensor.empty(x.shape), d, pos, theta, -1)]);
}
