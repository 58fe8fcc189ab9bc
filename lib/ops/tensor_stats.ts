// Statistics of a stored tensor of any dtype: mean, std, min, max, L2 norm, NaN and Inf counts over
// the finite values. Small tensors are summed on the host in f64; large ones stream through the GPU
// in chunks (kernels/tensor_stats.wgsl) with the per-workgroup partials combined in f64.
import {
  acquireBuffer,
  releaseBuffer,
  writeBuffer,
  readBuffer,
  pipeline,
  dispatch,
  maxBindingBytes,
} from "../gpu/index.ts";
import { decoder, type DType } from "../io/safetensors.ts";

export interface Stats {
  mean: number | null;
  std: number | null;
  min: number | null;
  max: number | null;
  l2: number;
  nan: number;
  inf: number;
}

export const GPU_STATS_MIN = 1 << 20; // below this many elements the host is faster than a round trip

interface Acc {
  n: number;
  s: number;
  s2: number;
  min: number;
  max: number;
  nan: number;
  inf: number;
}

function finish(a: Acc): Stats {
  const mean = a.n ? a.s / a.n : null;
  const v = a.n ? Math.max(0, a.s2 / a.n - (a.s / a.n) ** 2) : null;
  return {
    mean,
    std: v === null ? null : Math.sqrt(v),
    min: a.n ? a.min : null,
    max: a.n ? a.max : null,
    l2: Math.sqrt(a.s2),
    nan: a.nan,
    inf: a.inf,
  };
}

export function statsRef(dtype: DType, bytes: Uint8Array, n: number): Stats {
  const get = decoder(dtype, bytes);
  const a: Acc = { n: 0, s: 0, s2: 0, min: Infinity, max: -Infinity, nan: 0, inf: 0 };
  for (let i = 0; i < n; i++) {
    const x = get(i);
    if (Number.isNaN(x)) a.nan++;
    else if (!Number.isFinite(x)) a.inf++;
    else {
      a.n++;
      a.s += x;
      a.s2 += x * x;
      if (x < a.min) a.min = x;
      if (x > a.max) a.max = x;
    }
  }
  return finish(a);
}

/** GPU path: chunks converted to f32 on the host (exact for f16/bf16/f32), reduced on the GPU. */
export async function statsGpu(dtype: DType, bytes: Uint8Array, n: number): Promise<Stats> {
  const get = decoder(dtype, bytes);
  const maxBinding = maxBindingBytes();
  const chunk = Math.min(n, Math.floor(maxBinding / 4), 1 << 24);
  const W = 256;
  const xb = acquireBuffer(chunk * 4),
    pb = acquireBuffer(W * 6 * 4);
  const host = new Float32Array(chunk);
  const a: Acc = { n: 0, s: 0, s2: 0, min: Infinity, max: -Infinity, nan: 0, inf: 0 };
  try {
    for (let at = 0; at < n; at += chunk) {
      const m = Math.min(chunk, n - at);
      if (dtype === "F32")
        host.set(new Float32Array(bytes.buffer.slice(bytes.byteOffset + at * 4, bytes.byteOffset + (at + m) * 4)));
      else for (let i = 0; i < m; i++) host[i] = get(at + i);
      writeBuffer(xb, host.subarray(0, m));
      dispatch(pipeline("tensor_stats"), [xb, pb], [m], [W]);
      const part = new Float32Array(await readBuffer(pb, W * 6 * 4));
      for (let w = 0; w < W; w++) {
        a.s += part[w * 6]!;
        a.s2 += part[w * 6 + 1]!;
        a.min = Math.min(a.min, part[w * 6 + 2]!);
        a.max = Math.max(a.max, part[w * 6 + 3]!);
        a.nan += part[w * 6 + 4]!;
        a.inf += part[w * 6 + 5]!;
      }
    }
  } finally {
    releaseBuffer(xb);
    releaseBuffer(pb);
  }
  a.n = n - a.nan - a.inf;
  return finish(a);
}
