// Per-head channel slices and latent attention's key (each head's no-RoPE part + the shared RoPE key):
// exact copies forward; gradients scatter back, the shared part summed over heads.
import { beforeAll, describe, test } from "bun:test";
import { initGpu } from "../../lib/gpu/index.ts";
import { headSlice, headSliceRef, latentKey, latentKeyRef } from "../../lib/ops/head_slice.ts";
import { checkOp } from "../lib/check_op.ts";
import { randn } from "../lib/close.ts";

beforeAll(async () => {
  await initGpu();
});

const [N, H, DX, W, DR] = [7, 3, 11, 5, 4];

describe("head slices", () => {
  test("channels [4, 10) of each head", () =>
    checkOp({
      inputs: [{ data: randn(N * H * DX, 51), shape: [N, H, DX] }],
      gpu: (x) => headSlice(x, 4, 6),
      ref: (x) => headSliceRef(x, N, H, DX, 4, 6),
      refBackward: (dS) => {
        const dx = new Float32Array(N * H * DX);
        for (let nh = 0; nh < N * H; nh++) for (let c = 0; c < 6; c++) dx[nh * DX + 4 + c] = dS[nh * 6 + c]!;
        return [dx];
      },
      // copies both ways
      tol: { forward: 0, backward: 0 },
    }));

  test("the latent key: both gradients, the shared RoPE part summed over heads", () =>
    checkOp({
      inputs: [
        { data: randn(N * H * DX, 51), shape: [N, H, DX] },
        { data: randn(N * DR, 52), shape: [N, DR] },
      ],
      gpu: (x, r) => latentKey(x, W, r),
      ref: (x, r) => latentKeyRef(x, r, N, H, DX, W, DR),
      refBackward: (dK) => {
        const dx = new Float32Array(N * H * DX),
          dr = new Float64Array(N * DR);
        for (let nh = 0; nh < N * H; nh++) {
          for (let c = 0; c < W; c++) dx[nh * DX + c] = dK[nh * (W + DR) + c]!;
          for (let c = 0; c < DR; c++) dr[Math.floor(nh / H) * DR + c] += dK[nh * (W + DR) + W + c]!;
        }
        return [dx, dr];
      },
      // copies, and a sum over 3 heads
      tol: { forward: 0, backward: 1e-6 },
    }));
});
