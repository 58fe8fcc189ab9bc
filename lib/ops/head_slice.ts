// Channel ranges of per-head vectors, for multi-head latent attention: slicing a projection into its
// parts (no-RoPE key, value; latent, RoPE key) and building each head's key from its own no-RoPE part
// plus the RoPE key all heads share. Kernel: kernels/head_slice.wgsl.
import { pipeline, dispatch, clearBuffer, scratchBuffer } from "../gpu/index.ts";
import { Tensor } from "../tensor/tensor.ts";
import { record } from "../tensor/autograd.ts";
import { strideGrid } from "../gpu/grid.ts";

// ---- CPU references ----
export function headSliceRef(x: Float32Array, N: number, H: number, DX: number, off: number, W: number): Float32Array {
  const out = new Float32Array(N * H * W);
  for (let nh = 0; nh < N * H; nh++) for (let c = 0; c < W; c++) out[nh * W + c] = x[nh * DX + off + c]!;
  return out;
}

export function latentKeyRef(
  x: Float32Array,
  r: Float32Array,
  N: number,
  H: number,
  DX: number,
  W: number,
  DR: number,
): Float32Array {
  const out = new Float32Array(N * H * (W + DR));
  for (let n = 0; n < N; n++)
    for (let h = 0; h < H; h++) {
      const o = (n * H + h) * (W + DR);
      for (let c = 0; c < W; c++) out[o + c] = x[(n * H + h) * DX + c]!;
      for (let c = 0; c < DR; c++) out[o + W + c] = r[n * DR + c]!;
    }
  return out;
}

// ---- GPU ----
function run(
  mode: number,
  src: Tensor,
  r: Tensor | null,
  dst: Tensor,
  N: number,
  H: number,
  DX: number,
  W: number,
  off: number,
  DR: number,
  n: number,
  SW = W,
): void {
  dispatch(
    pipeline("head_slice", { MODE: mode }),
    [src.buffer, r?.buffer ?? scratchBuffer(), dst.buffer],
    [N, H, DX, W, off, DR, SW],
    strideGrid(n),
  );
}

/** x: (N, H, DX) → x[:, :, off : off + W] as (N, H, W). */
export function headSlice(x: Tensor, off: number, W: number): Tensor {
  const [N, H, DX] = x.shape as [number, number, number];
  if (x.shape.length !== 3 || off + W > DX) throw new Error(`headSlice: [${off}, ${off + W}) is outside [${x.shape}]`);
  const out = Tensor.empty([N, H, W]);
  run(0, x, null, out, N, H, DX, W, off, 0, N * H * W);
  return record(out, "head_slice", [x], (d) => {
    const dx = Tensor.empty(x.shape);
    clearBuffer(dx.buffer, 0, dx.bytes);
    run(1, d, null, dx, N, H, DX, W, off, 0, N * H * W);
    return [dx];
  });
}

/**
 * The latent-attention key: x (N, H, DX) holds each head's no-RoPE key in its first W channels,
 * r (N, DR) the RoPE key shared by all heads → (N, H, W + DR).
 */
export function latentKey(x: Tensor, W: number, r: Tensor): Tensor {
  const [N, H, DX] = x.shape as [number, number, number];
  const DR = r.shape[r.shape.length - 1]!;
  if (r.size !== N * DR || W > DX) throw new Error(`latentKey: x [${x.shape}] and r [${r.shape}] do not fit`);
  const out = Tensor.empty([N, H, W + DR]);
  run(2, x, r, out, N, H, DX, W, 0, DR, N * H * (W + DR));
  return record(out, "latent_key", [x, r], (d) => {
    let dx: Tensor | null = null,
      dr: Tensor | null = null;
    if (x.requiresGrad) {
      dx = Tensor.empty(x.shape);
      clearBuffer(dx.buffer, 0, dx.bytes);
      // d's first W channels of each head go back to x's first W (a scatter with the key's width)
      run(1, d, null, dx, N, H, DX, W, 0, 0, N * H * W, W + DR);
    }
    if (r.requiresGrad) {
      dr = Tensor.empty(r.shape);
      run(3, d, null, dr, N, H, DX, W, 0, DR, N * DR);
    }
    return [dx, dr];
  });
}

/** Raw (no autograd): dst (N, H, DX)[..., off : off + W] += src (N, H, W). */
export function headScatterInto(dst: Tensor, src: Tensor, off: number): Tensor {
  const [N, H, DX] = dst.shape as [number, number, number];
  const W = src.shape[src.shape.length - 1]!;
  run(1, src, null, dst, N, H, DX, W, off, 0, N * H * W);
  return dst;
}
