// Training attention's f32 kernels (register tiles, lib/ops/attention.ts) against the CPU reference:
// GQA, latent attention's value width, document masks, odd lengths, and the smaller tiles of
// adapters with less workgroup memory. The subgroup-matrix twins: attention_sgmat.test.ts.
import { beforeAll, describe, expect, test } from "bun:test";
import { gpu, initGpu } from "../../lib/gpu/index.ts";
import { Tensor, scopeAsync } from "../../lib/tensor/index.ts";
import { backward } from "../../lib/ops/backward.ts";
import {
  attention,
  attentionRef,
  attentionBackwardRef,
  backwardLaunches,
  dispatchAttention,
  forwardLaunch,
  type AttnDims,
} from "../../lib/ops/attention.ts";
import { mul, sumRows } from "../../lib/ops/index.ts";
import { reshape } from "../../lib/ops/shape.ts";
import { randn, relError, finiteDiff, expectAllClose } from "../lib/close.ts";

beforeAll(async () => {
  await initGpu();
});

// positions 0..T-1 per batch row, or restarting at given document starts
function positions(B: number, T: number, starts: number[] = []): Int32Array {
  const p = new Int32Array(B * T);
  for (let b = 0; b < B; b++)
    for (let t = 0; t < T; t++) p[b * T + t] = t === 0 || starts.includes(t) ? 0 : p[b * T + t - 1]! + 1;
  return p;
}

const CASES = [
  { name: "1 query head per kv head", B: 2, T: 7, H: 2, KV: 2, D: 8, starts: [] as number[] },
  { name: "2 query heads per kv head, odd T", B: 1, T: 37, H: 4, KV: 2, D: 16, starts: [] },
  { name: "4 query heads per kv head, head dim 64", B: 2, T: 45, H: 4, KV: 1, D: 64, starts: [] },
  { name: "document mask", B: 2, T: 40, H: 2, KV: 1, D: 32, starts: [5, 17, 33] },
  { name: "head dim 128, several key tiles", B: 1, T: 70, H: 2, KV: 2, D: 128, starts: [] },
  {
    name: "values narrower than keys (latent attention: D 24, DV 16)",
    B: 2,
    T: 33,
    H: 3,
    KV: 3,
    D: 24,
    DV: 16,
    starts: [9],
  },
  { name: "values wider than keys (D 12, DV 40)", B: 1, T: 41, H: 2, KV: 1, D: 12, DV: 40, starts: [] },
  // the key-side kernel skips query tiles that see none of its keys: here those of later documents
  { name: "documents longer than a tile", B: 1, T: 100, H: 2, KV: 1, D: 16, starts: [40, 80] },
] as { name: string; B: number; T: number; H: number; KV: number; D: number; DV?: number; starts: number[] }[];

describe("attention vs CPU reference", () => {
  for (const c of CASES) {
    test(c.name, async () => {
      const { B, T, H, KV, D } = c;
      const DV = c.DV ?? D;
      const Q = randn(B * T * H * D, 1),
        K = randn(B * T * KV * D, 2),
        V = randn(B * T * KV * DV, 3),
        dO = randn(B * T * H * DV, 4);
      const pos = positions(B, T, c.starts);
      const dims = { B, T, Tk: T, H, KV, D, DV, qOffset: 0, scale: 1 / Math.sqrt(D) };
      const [o, dq, dk, dv] = await scopeAsync(async () => {
        const q = Tensor.from(Q, [B, T, H, D]).param(),
          k = Tensor.from(K, [B, T, KV, D]).param(),
          v = Tensor.from(V, [B, T, KV, DV]).param();
        const out = attention(q, k, v, Tensor.from(pos, [B * T], "i32"));
        backward(sumRows(mul(reshape(out, [B * T, H * DV]), Tensor.from(dO, [B * T, H * DV]))));
        return [await out.toArray(), await q.grad!.toArray(), await k.grad!.toArray(), await v.grad!.toArray()];
      });
      const ref = attentionRef(Q, K, V, pos, dims);
      const g = attentionBackwardRef(Q, K, V, pos, dO, dims);
      // f32 sums of at most T·D products against f64: 1e-5 normwise, far inside the 1e-4 the issue asks
      expect(relError(o!, ref.o)).toBeLessThan(1e-5);
      expect(relError(dq!, g.dq)).toBeLessThan(1e-5);
      expect(relError(dk!, g.dk)).toBeLessThan(1e-5);
      expect(relError(dv!, g.dv)).toBeLessThan(1e-5);
    });
  }

  test("the CPU reference's backward matches finite differences of its forward", () => {
    const [B, T, H, KV, D, DV] = [1, 5, 2, 1, 4, 3];
    const Q = randn(B * T * H * D, 5),
      K = randn(B * T * KV * D, 6),
      V = randn(B * T * KV * DV, 7),
      dO = randn(B * T * H * DV, 8);
    const pos = positions(B, T, [3]);
    const dims = { B, T, Tk: T, H, KV, D, DV, qOffset: 0, scale: 0.5 };
    const loss = (q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>) => {
      const { o } = attentionRef(Float32Array.from(q), Float32Array.from(k), Float32Array.from(v), pos, dims);
      return o.reduce((a, x, i) => a + x * dO[i]!, 0);
    };
    const g = attentionBackwardRef(Q, K, V, pos, dO, dims);
    // the forward rounds to f32, so differences of h = 1e-3 carry ~1e-4 noise
    expectAllClose(
      g.dq,
      finiteDiff((x) => loss(x, K, V), Q, 1e-3),
      { atol: 5e-4, rtol: 1e-3, label: "dq" },
    );
    expectAllClose(
      g.dk,
      finiteDiff((x) => loss(Q, x, V), K, 1e-3),
      { atol: 5e-4, rtol: 1e-3, label: "dk" },
    );
    expectAllClose(
      g.dv,
      finiteDiff((x) => loss(Q, K, x), V, 1e-3),
      { atol: 5e-4, rtol: 1e-3, label: "dv" },
    );
  });

  test("queries continuing a cache (qOffset) see every earlier key", async () => {
    const [B, Tk, T, H, KV, D] = [1, 9, 3, 2, 1, 16];
    const Q = randn(B * T * H * D, 9),
      K = randn(B * Tk * KV * D, 10),
      V = randn(B * Tk * KV * D, 11);
    const pos = Int32Array.from([6, 7, 8]);
    const dims = { B, T, Tk, H, KV, D, qOffset: 6, scale: 1 / 4 };
    const o = await scopeAsync(() =>
      attention(
        Tensor.from(Q, [B, T, H, D]),
        Tensor.from(K, [B, Tk, KV, D]),
        Tensor.from(V, [B, Tk, KV, D]),
        Tensor.from(pos, [3], "i32"),
        { qOffset: 6 },
      ).toArray(),
    );
    expect(relError(o, attentionRef(Q, K, V, pos, dims).o)).toBeLessThan(1e-5);
  });

  // An adapter with WebGPU's minimum workgroup memory (16 KiB) and 256 invocations gets smaller tiles
  // than lavapipe's 32 KiB: run those kernels too, on raw buffers.
  const SMALL = {
    maxComputeWorkgroupStorageSize: 16384,
    maxComputeInvocationsPerWorkgroup: 256,
    maxComputeWorkgroupSizeX: 256,
  };
  for (const [D, DV] of [
    [64, 64],
    [128, 128],
  ] as const)
    test(`the tiles of a 16 KiB adapter, head dims ${D} and ${DV}`, async () => {
      const [B, T, H, KV] = [1, 45, 4, 2];
      const d: AttnDims = { B, T, Tk: T, H, KV, D, DV, qOffset: 0, scale: 1 / Math.sqrt(D) };
      const fwd = forwardLaunch(d, null, SMALL, 2),
        bwd = backwardLaunches(d, null, SMALL);
      // not what lavapipe picks
      expect(fwd.defines).not.toEqual(forwardLaunch(d, null, gpu().limits, 2).defines);
      backwardLaunches(d, null, gpu().limits).forEach((l, i) => expect(bwd[i]!.defines).not.toEqual(l.defines));
      const Q = randn(B * T * H * D, 11),
        K = randn(B * T * KV * D, 12),
        V = randn(B * T * KV * DV, 13),
        dO = randn(B * T * H * DV, 14);
      const pos = positions(B, T, [17]);
      const [o, dq, dk, dv] = await scopeAsync(async () => {
        const t = (x: Float32Array) => Tensor.from(x, [x.length]);
        const [q, k, v, dout, p] = [t(Q), t(K), t(V), t(dO), Tensor.from(pos, [B * T], "i32")];
        const [out, stats, gq, gk, gv] = [B * T * H * DV, 2 * B * H * T, Q.length, K.length, V.length].map((n) =>
          Tensor.empty([n]),
        ) as [Tensor, Tensor, Tensor, Tensor, Tensor];
        dispatchAttention(fwd, [q.buffer, k.buffer, v.buffer, p.buffer, out.buffer, stats.buffer], d);
        dispatchAttention(
          bwd[0]!,
          [q.buffer, k.buffer, v.buffer, p.buffer, out.buffer, dout.buffer, stats.buffer, gq.buffer],
          d,
        );
        dispatchAttention(
          bwd[1]!,
          [q.buffer, k.buffer, v.buffer, p.buffer, dout.buffer, stats.buffer, gk.buffer, gv.buffer],
          d,
        );
        return [await out.toArray(), await gq.toArray(), await gk.toArray(), await gv.toArray()];
      });
      const g = attentionBackwardRef(Q, K, V, pos, dO, d);
      expect(relError(o!, attentionRef(Q, K, V, pos, d).o)).toBeLessThan(1e-5);
      expect(relError(dq!, g.dq)).toBeLessThan(1e-5);
      expect(relError(dk!, g.dk)).toBeLessThan(1e-5);
      expect(relError(dv!, g.dv)).toBeLessThan(1e-5);
    });

  test("a head dim no tile fits is refused with the reason", () => {
    const d: AttnDims = { B: 1, T: 8, Tk: 8, H: 1, KV: 1, D: 4096, qOffset: 0, scale: 1 };
    expect(() => forwardLaunch(d, null, SMALL, 1)).toThrow(
      "attention: the forward for head dims 4096 (keys) and 4096 (values) needs more workgroup memory than this adapter has",
    );
  });
});
