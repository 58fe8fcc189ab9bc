// Training attention's f32 kernels (register tiles, lib/ops/attention.ts) against the CPU reference:
// GQA, latent attention's value width, document masks, odd lengths, sliding windows (alone and with
// documents), and the smaller tiles of adapters with less workgroup memory. The subgroup-matrix
// twins: attention_sgmat.test.ts.
import { beforeAll, describe, expect, test } from "bun:test";
import { gpu, initGpu } from "../../lib/gpu/index.ts";
import { Tensor, scopeAsync } from "../../lib/tensor/index.ts";
import { backward } from "../../lib/ops/backward.ts";
import {
  attention,
  attentionInto,
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
  // sliding windows (Mistral): query i sees keys i - window + 1 .. i of its document
  { name: "window 1: each query sees only itself", B: 1, T: 19, H: 2, KV: 1, D: 8, starts: [], window: 1 },
  { name: "window 3, 2 query heads per kv head, odd T", B: 2, T: 37, H: 4, KV: 2, D: 16, starts: [], window: 3 },
  // documents shorter than the window (the document bounds) and longer (the window bounds)
  {
    name: "window 20 with documents, latent attention's value width (D 24, DV 16)",
    B: 2,
    T: 70,
    H: 3,
    KV: 3,
    D: 24,
    DV: 16,
    starts: [9, 21, 60],
    window: 20,
  },
  // key tiles (forward, dq) and query tiles (dk, dv) wholly outside every window are skipped
  { name: "window 17 over 150 tokens, several tiles", B: 1, T: 150, H: 2, KV: 1, D: 16, starts: [], window: 17 },
] as {
  name: string;
  B: number;
  T: number;
  H: number;
  KV: number;
  D: number;
  DV?: number;
  starts: number[];
  window?: number;
}[];

/** Random q (B, T, H, D), k (B, Tk, KV, D), v (B, Tk, KV, DV), dO (B, T, H, DV) from four seeds. */
function randomInputs(d: AttnDims, seed: number) {
  const { B, T, Tk, H, KV, D } = d;
  const DV = d.DV ?? D;
  return {
    Q: randn(B * T * H * D, seed),
    K: randn(B * Tk * KV * D, seed + 1),
    V: randn(B * Tk * KV * DV, seed + 2),
    dO: randn(B * T * H * DV, seed + 3),
  };
}

/** o, dq, dk, dv of attention() and backward() on the GPU, the loss Σ o·dO. */
function run(
  Q: Float32Array,
  K: Float32Array,
  V: Float32Array,
  dO: Float32Array,
  pos: Int32Array,
  d: AttnDims,
): Promise<Float32Array[]> {
  const { B, T, H, KV, D } = d;
  const DV = d.DV ?? D;
  return scopeAsync(async () => {
    const q = Tensor.from(Q, [B, T, H, D]).param(),
      k = Tensor.from(K, [B, T, KV, D]).param(),
      v = Tensor.from(V, [B, T, KV, DV]).param();
    const out = attention(q, k, v, Tensor.from(pos, [B * T], "i32"), { window: d.window });
    backward(sumRows(mul(reshape(out, [B * T, H * DV]), Tensor.from(dO, [B * T, H * DV]))));
    return [await out.toArray(), await q.grad!.toArray(), await k.grad!.toArray(), await v.grad!.toArray()];
  });
}

describe("attention vs CPU reference", () => {
  for (const c of CASES) {
    test(c.name, async () => {
      const { B, T, H, KV, D } = c;
      const DV = c.DV ?? D;
      const pos = positions(B, T, c.starts);
      const dims = { B, T, Tk: T, H, KV, D, DV, qOffset: 0, scale: 1 / Math.sqrt(D), window: c.window };
      const { Q, K, V, dO } = randomInputs(dims, 1);
      const [o, dq, dk, dv] = await run(Q, K, V, dO, pos, dims);
      const ref = attentionRef(Q, K, V, pos, dims);
      const g = attentionBackwardRef(Q, K, V, pos, dO, dims);
      // f32 sums of at most T·D products against f64: 1e-5 normwise, far inside the 1e-4 the issue asks
      expect(relError(o!, ref.o)).toBeLessThan(1e-5);
      expect(relError(dq!, g.dq)).toBeLessThan(1e-5);
      expect(relError(dk!, g.dk)).toBeLessThan(1e-5);
      expect(relError(dv!, g.dv)).toBeLessThan(1e-5);
    });
  }

  for (const window of [0, 2])
    test(`the CPU reference's backward matches finite differences of its forward (window ${window})`, () => {
      const [B, T, H, KV, D, DV] = [1, 5, 2, 1, 4, 3];
      const Q = randn(B * T * H * D, 5),
        K = randn(B * T * KV * D, 6),
        V = randn(B * T * KV * DV, 7),
        dO = randn(B * T * H * DV, 8);
      const pos = positions(B, T, [3]);
      const dims = { B, T, Tk: T, H, KV, D, DV, qOffset: 0, scale: 0.5, window };
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

  // Independent of the reference's ranges: a query that sees one key takes its value whole, so o is
  // v, dq and dk are 0 (dS = P (dP - dO·o) with P = 1, o = v) and dv_j is Σ over j's query heads of dO_j.
  test("window 1: o is each token's own value, dq and dk are 0", async () => {
    const [B, T, H, KV, D] = [2, 23, 4, 2, 8];
    const d: AttnDims = { B, T, Tk: T, H, KV, D, qOffset: 0, scale: 1 / Math.sqrt(D), window: 1 };
    const { Q, K, V, dO } = randomInputs(d, 21);
    const [o, dq, dk, dv] = await run(Q, K, V, dO, positions(B, T, [7]), d);
    const wantO = new Float32Array(o!.length),
      wantDv = new Float32Array(V.length);
    for (let t = 0; t < B * T; t++)
      for (let h = 0; h < H; h++)
        for (let c = 0; c < D; c++) {
          const g = Math.floor(h / (H / KV));
          wantO[(t * H + h) * D + c] = V[(t * KV + g) * D + c]!;
          wantDv[(t * KV + g) * D + c]! += dO[(t * H + h) * D + c]!;
        }
    // one term, times exp(0) / 1: exact but for f32 sums of two dO terms in dv
    expectAllClose(o!, wantO, { atol: 1e-6, rtol: 0, label: "o" });
    expectAllClose(dq!, new Float32Array(Q.length), { atol: 1e-6, rtol: 0, label: "dq" });
    expectAllClose(dk!, new Float32Array(K.length), { atol: 1e-6, rtol: 0, label: "dk" });
    expectAllClose(dv!, wantDv, { atol: 1e-6, rtol: 1e-6, label: "dv" });
  });

  // A window of T or more hides nothing: the kernels visit the same tiles and mask the same columns.
  test("a window of T or more equals no window, to the bit", async () => {
    const [B, T, H, KV, D] = [1, 37, 4, 2, 16];
    const pos = positions(B, T, [11]);
    const d: AttnDims = { B, T, Tk: T, H, KV, D, qOffset: 0, scale: 1 / Math.sqrt(D) };
    const { Q, K, V, dO } = randomInputs(d, 31);
    const none = await run(Q, K, V, dO, pos, d);
    expect(await run(Q, K, V, dO, pos, { ...d, window: T })).toEqual(none);
    expect(await run(Q, K, V, dO, pos, { ...d, window: 1000 })).toEqual(none);
    // and T - 1 is a window: query T - 1 loses key 0 (here in its document: no documents)
    const whole = positions(B, T);
    const w = await run(Q, K, V, dO, whole, { ...d, window: T - 1 });
    expect(w[0]).not.toEqual((await run(Q, K, V, dO, whole, d))[0]);
    expect(relError(w[0]!, attentionRef(Q, K, V, whole, { ...d, window: T - 1 }).o)).toBeLessThan(1e-5);
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

  // Generation's prefill over a cache: query i at index qOffset + i sees cached keys qOffset + i - 4 ..
  // qOffset + i. The cache's first 16 rows are NaN: a kernel that read their tile, even to mask it
  // (0·NaN is NaN), would return NaN, so this also shows that key tiles before every window are skipped.
  test("a window over a cache (qOffset): keys before every query's window are never read", async () => {
    const [B, Tk, T, H, KV, D] = [1, 72, 8, 4, 2, 16];
    const d: AttnDims = { B, T, Tk, H, KV, D, qOffset: 64, scale: 1 / 4, window: 5 };
    const { Q, K, V, dO } = randomInputs(d, 41);
    K.fill(Number.NaN, 0, 16 * KV * D);
    V.fill(Number.NaN, 0, 16 * KV * D);
    const pos = Int32Array.from({ length: T }, (_, i) => 64 + i);
    const [o, dq, dk, dv, oInto, lse] = await scopeAsync(async () => {
      const q = Tensor.from(Q, [B, T, H, D]).param(),
        k = Tensor.from(K, [B, Tk, KV, D]).param(),
        v = Tensor.from(V, [B, Tk, KV, D]).param(),
        p = Tensor.from(pos, [T], "i32");
      const out = attention(q, k, v, p, { qOffset: 64, window: 5 });
      backward(sumRows(mul(reshape(out, [B * T, H * D]), Tensor.from(dO, [B * T, H * D]))));
      const o2 = Tensor.empty([B, T, H, D]),
        l2 = Tensor.empty([B, H, T]);
      attentionInto(o2, l2, q, k, v, p, d);
      return Promise.all([out, q.grad!, k.grad!, v.grad!, o2, l2].map((t) => t.toArray()));
    });
    const ref = attentionRef(Q, K, V, pos, d),
      g = attentionBackwardRef(Q, K, V, pos, dO, d);
    expect(relError(o!, ref.o)).toBeLessThan(1e-5);
    expect(relError(oInto!, ref.o)).toBeLessThan(1e-5);
    expect(relError(lse!, ref.lse)).toBeLessThan(1e-5);
    expect(relError(dq!, g.dq)).toBeLessThan(1e-5);
    expect(relError(dk!, g.dk)).toBeLessThan(1e-5);
    expect(relError(dv!, g.dv)).toBeLessThan(1e-5);
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
    test(`the tiles of a 16 KiB adapter, head dims ${D} and ${DV}, windows 0 and 6`, async () => {
      const [B, T, H, KV] = [1, 45, 4, 2];
      const d: AttnDims = { B, T, Tk: T, H, KV, D, DV, qOffset: 0, scale: 1 / Math.sqrt(D) };
      const fwd = forwardLaunch(d, null, SMALL, 2),
        bwd = backwardLaunches(d, null, SMALL);
      // not what lavapipe picks
      expect(fwd.defines).not.toEqual(forwardLaunch(d, null, gpu().limits, 2).defines);
      backwardLaunches(d, null, gpu().limits).forEach((l, i) => expect(bwd[i]!.defines).not.toEqual(l.defines));
      const { Q, K, V, dO } = randomInputs(d, 11);
      const pos = positions(B, T, [17]);
      // their own tile edges, with and without a window (a uniform: the same pipelines)
      for (const window of [0, 6]) {
        const dw = { ...d, window };
        const [o, dq, dk, dv] = await scopeAsync(async () => {
          const t = (x: Float32Array) => Tensor.from(x, [x.length]);
          const [q, k, v, dout, p] = [t(Q), t(K), t(V), t(dO), Tensor.from(pos, [B * T], "i32")];
          const [out, stats, gq, gk, gv] = [B * T * H * DV, 2 * B * H * T, Q.length, K.length, V.length].map((n) =>
            Tensor.empty([n]),
          ) as [Tensor, Tensor, Tensor, Tensor, Tensor];
          dispatchAttention(fwd, [q.buffer, k.buffer, v.buffer, p.buffer, out.buffer, stats.buffer], dw);
          dispatchAttention(
            bwd[0]!,
            [q.buffer, k.buffer, v.buffer, p.buffer, out.buffer, dout.buffer, stats.buffer, gq.buffer],
            dw,
          );
          dispatchAttention(
            bwd[1]!,
            [q.buffer, k.buffer, v.buffer, p.buffer, dout.buffer, stats.buffer, gk.buffer, gv.buffer],
            dw,
          );
          return [await out.toArray(), await gq.toArray(), await gk.toArray(), await gv.toArray()];
        });
        const g = attentionBackwardRef(Q, K, V, pos, dO, dw);
        expect(relError(o!, attentionRef(Q, K, V, pos, dw).o)).toBeLessThan(1e-5);
        expect(relError(dq!, g.dq)).toBeLessThan(1e-5);
        expect(relError(dk!, g.dk)).toBeLessThan(1e-5);
        expect(relError(dv!, g.dv)).toBeLessThan(1e-5);
      }
    });

  test("a head dim no tile fits is refused with the reason", () => {
    const d: AttnDims = { B: 1, T: 8, Tk: 8, H: 1, KV: 1, D: 4096, qOffset: 0, scale: 1 };
    expect(() => forwardLaunch(d, null, SMALL, 1)).toThrow(
      "attention: the forward for head dims 4096 (keys) and 4096 (values) needs more workgroup memory than this adapter has",
    );
  });
});
