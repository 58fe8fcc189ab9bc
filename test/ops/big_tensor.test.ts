// Tensors larger than one storage binding (gpu/bindings.ts): every op a big embedding, LM head or
// logits tensor passes through is run twice on tiny tensors, once whole and once under a binding cap
// a few KiB wide (setMaxBinding), and the two results must be the same bits. dispatch() refuses any
// binding over the cap, so a path that forgot to split fails here; the dispatch counts show that the
// capped run really split.
import { afterEach, beforeAll, describe, expect, test } from "bun:test";
import {
  bindingAlign,
  dispatchStats,
  initGpu,
  maxBindingBytes,
  readBuffer,
  setMaxBinding,
} from "../../lib/gpu/index.ts";
import { Tensor, scopeAsync } from "../../lib/tensor/index.ts";
import { add, addInto, fill, scale } from "../../lib/ops/elementwise.ts";
import { embedding, embeddingBackward, embeddingRef } from "../../lib/ops/embedding.ts";
import { matmul, matmulRef, splitMatmul } from "../../lib/ops/matmul.ts";
import { dispatchVariant, matmulCandidates, type MatmulShape } from "../../lib/ops/_matmul_variants.ts";
import { crossEntropy, logprobs } from "../../lib/ops/cross_entropy.ts";
import { backward } from "../../lib/ops/backward.ts";
import { AdamW, ADAMW_DEFAULTS } from "../../lib/optim/adamw.ts";
import { GradNorm } from "../../lib/optim/grad_norm.ts";
import { randn } from "../lib/close.ts";

beforeAll(async () => {
  await initGpu();
});
afterEach(() => setMaxBinding(null));

/** Runs fn whole and under `cap` bytes per binding; the results, and how many dispatches each took. */
async function wholeAndSplit(cap: number, fn: () => Promise<Float32Array[]>) {
  const runs: { out: Float32Array[]; dispatches: number }[] = [];
  for (const c of [null, cap]) {
    setMaxBinding(c);
    const before = dispatchStats().dispatches;
    const out = await scopeAsync(fn);
    runs.push({ out, dispatches: dispatchStats().dispatches - before });
  }
  setMaxBinding(null);
  return { whole: runs[0]!, split: runs[1]! };
}

/** Bit-for-bit equality (NaNs and -0 included), reporting the first differing index. */
function expectSameBits(a: Float32Array, b: Float32Array, label: string): void {
  expect(b.length).toBe(a.length);
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length),
    y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  let first = -1;
  for (let i = 0; i < x.length && first < 0; i++) if (x[i] !== y[i]) first = i;
  expect(first === -1 ? "same bits" : `${label}: element ${first}: ${a[first]} vs ${b[first]}`).toBe("same bits");
}

async function same(cap: number, fn: () => Promise<Float32Array[]>, label: string) {
  const { whole, split } = await wholeAndSplit(cap, fn);
  whole.out.forEach((w, i) => expectSameBits(w, split.out[i]!, `${label} output ${i}`));
  expect(split.dispatches).toBeGreaterThan(whole.dispatches);
  return whole.out;
}

const f32 = async (t: Tensor) => (await t.toArray()) as Float32Array;
const CAP = 8192; // bytes: 2048 floats per binding, far below every tensor here

describe("split under a small binding cap = unsplit, bit for bit", () => {
  test("the cap: setMaxBinding and BUNLM_MAX_BINDING lower it, aligned, never above the adapter's", () => {
    const own = maxBindingBytes();
    setMaxBinding(10000);
    expect(maxBindingBytes()).toBe(Math.floor(10000 / bindingAlign()) * bindingAlign());
    setMaxBinding(null);
    process.env.BUNLM_MAX_BINDING = "4096";
    expect(maxBindingBytes()).toBe(4096);
    process.env.BUNLM_MAX_BINDING = String(own * 2);
    expect(maxBindingBytes()).toBe(own);
    process.env.BUNLM_MAX_BINDING = "lots";
    expect(() => maxBindingBytes()).toThrow("BUNLM_MAX_BINDING=lots");
    delete process.env.BUNLM_MAX_BINDING;
    expect(maxBindingBytes()).toBe(own);
  });

  test("an unsplit binding over the cap is refused, not clamped", async () => {
    await scopeAsync(async () => {
      const a = Tensor.from(randn(5000, 1), [5000]);
      setMaxBinding(CAP);
      // a dispatch that binds the whole 20 kB buffer itself (not through an op that splits)
      const { dispatch, pipeline } = await import("../../lib/gpu/index.ts");
      expect(() =>
        dispatch(pipeline("elementwise", { OP: 3 }), [a.buffer, a.buffer, a.buffer], [5000, 0], [1]),
      ).toThrow("over the 8192-byte binding limit");
    });
  });

  test("elementwise: add, scale, fill, addInto over 10,007 elements", async () => {
    const x = randn(10007, 101),
      y = randn(10007, 102);
    await same(
      CAP,
      async () => {
        const a = Tensor.from(x, [10007]),
          b = Tensor.from(y, [10007]);
        const acc = scale(a, 0.37);
        addInto(acc, b);
        return [await f32(add(a, b)), await f32(acc), await f32(fill([10007], 1.5))];
      },
      "elementwise",
    );
  });

  test("embedding lookup and gradient: a (300, 24) table in windows of rows (rows not 256-byte aligned)", async () => {
    const V = 300,
      C = 24,
      N = 77;
    const W = randn(V * C, 103),
      dout = randn(N * C, 104);
    const ids = Int32Array.from({ length: N }, (_, i) => (i * 131 + 7) % V);
    ids[5] = V - 1;
    ids[6] = 0;
    ids[9] = ids[10]!; // a repeated id: two terms in one row's sum
    const [fwd] = await same(
      CAP,
      async () => {
        const w = Tensor.from(W, [V, C]),
          i = Tensor.from(ids, [N], "i32");
        return [await f32(embedding(w, i)), await f32(embeddingBackward(Tensor.from(dout, [N, C]), i, V))];
      },
      "embedding",
    );
    expect(Array.from(fwd!)).toEqual(Array.from(embeddingRef(W, ids, C)));
  });

  test("an id outside the table gives a zero row, split or not", async () => {
    const V = 300,
      C = 24;
    const W = randn(V * C, 4);
    const ids = Int32Array.from([3, V, -1, 299]);
    const [out] = await same(
      CAP,
      async () => [await f32(embedding(Tensor.from(W, [V, C]), Tensor.from(ids, [4], "i32")))],
      "embedding",
    );
    expect(Array.from(out!.subarray(C, 3 * C))).toEqual(new Array(2 * C).fill(0));
  });

  // The LM head's three layouts, with x (T, C), W (V, C), logits (T, V): logits = x·Wᵀ (split along N
  // and M), dx = dlogits·W (split along K: CONTINUE), dW = dlogitsᵀ·x (A transposed, split along M and K).
  const T = 40,
    C = 24,
    V = 301;
  const X = randn(T * C, 105),
    W = randn(V * C, 106),
    D = randn(T * V, 107),
    R = randn(T * C, 108);
  const plain = (M: number, N: number, K: number, o: Partial<MatmulShape> = {}): MatmulShape => ({
    M,
    N,
    K,
    batch: 1,
    transA: false,
    transB: false,
    accumulate: false,
    strideA: 0,
    strideB: 0,
    strideC: 0,
    ...o,
  });
  for (const kernel of ["matmul_subgroup", "matmul"] as const) {
    test(`LM head layouts on ${kernel}`, async () => {
      // for the tiled kernel the smallest tile (32 × 32, 4 × 4 a thread), the quickest to compile here
      const all = matmulCandidates().filter((c) => c.kernel === kernel);
      const v = all.find((c) => c.defines.BM === 32) ?? all[all.length - 1];
      if (!v) return; // this adapter has no subgroups of 8: the tiled kernel's test covers it
      const run = (out: Tensor, a: Tensor, b: Tensor, s: MatmulShape, residual?: Tensor) =>
        splitMatmul((c, a, b, s, f) => dispatchVariant(v, c, a, b, s, f), out.buffer, a.buffer, b.buffer, s, {
          residual: residual?.buffer,
        });
      const [logits] = await same(
        CAP,
        async () => {
          const x = Tensor.from(X, [T, C]),
            w = Tensor.from(W, [V, C]),
            d = Tensor.from(D, [T, V]),
            r = Tensor.from(R, [T, C]);
          const logits = Tensor.empty([T, V]),
            dx = Tensor.empty([T, C]),
            dxr = Tensor.empty([T, C]),
            dw = Tensor.empty([V, C]);
          run(logits, x, w, plain(T, V, C, { transB: true }));
          run(dx, d, w, plain(T, C, V));
          run(dxr, d, w, plain(T, C, V), r); // the residual fusion stores on the last part along K only
          run(dw, d, x, plain(V, C, T, { transA: true }));
          return [await f32(logits), await f32(dx), await f32(dxr), await f32(dw)];
        },
        kernel,
      );
      const ref = matmulRef(X, W, T, V, C, { transB: true });
      for (let i = 0; i < ref.length; i++) expect(Math.abs(logits![i]! - ref[i]!)).toBeLessThan(1e-4);
    });
  }

  test("matmul with autograd: a 3-D x against a shared W (batch folded into rows), decoding's single row", async () => {
    await same(
      CAP,
      async () => {
        const x = Tensor.from(X, [2, T / 2, C]).param(),
          w = Tensor.from(W, [V, C]).param();
        const logits = matmul(x, w, { transB: true });
        const row = matmul(Tensor.from(X.subarray(0, C), [1, C]), w, { transB: true }); // the skinny kernel
        backward(scale(logits, 1), Tensor.from(D, [2, T / 2, V]));
        return [await f32(logits), await f32(row), await f32(x.grad!), await f32(w.grad!)];
      },
      "matmul autograd",
    );
  });

  test("cross-entropy and log-probs over (40, 301) logits, forward and in-place backward", async () => {
    const targets = Int32Array.from({ length: T }, (_, i) => (i % 7 === 3 ? -100 : (i * 37) % V));
    await same(
      CAP,
      async () => {
        const z = Tensor.from(D, [T, V]).param();
        const loss = crossEntropy(z, Tensor.from(targets, [T], "i32"), { labelSmoothing: 0.1 });
        const l = await f32(loss);
        backward(loss);
        const z2 = Tensor.from(D, [T, V]).param();
        const lp = logprobs(z2, Tensor.from(targets, [T], "i32"), { inplace: false });
        const lpv = await f32(lp);
        backward(lp, Tensor.from(randn(T, 6), [T]));
        return [l, await f32(z.grad!), lpv, await f32(z2.grad!)];
      },
      "cross entropy",
    );
  });

  test("AdamW and the gradient norm over a 70,001-element parameter (norm: ranges of whole strides, sums carried)", async () => {
    const n = 70001;
    const P = randn(n, 109),
      G = randn(n, 110),
      small = randn(300, 111);
    // the norm's ranges are whole strides of 64 workgroups × 256 threads: 64 KiB, so a cap of 128 KiB
    const [, norm] = await same(
      128 * 1024,
      async () => {
        const p = Tensor.from(P, [n]).param(),
          q = Tensor.from(small, [300]).param();
        p.grad = Tensor.from(G, [n]);
        q.grad = Tensor.from(small, [300]);
        const opt = new AdamW(["w", "b"], [p, q], ADAMW_DEFAULTS);
        opt.computeNorm();
        opt.update(1e-2);
        const out = [await f32(p), await f32(opt.norm.stats)];
        opt.dispose();
        return out;
      },
      "adamw",
    );
    let s = 0;
    for (const x of G) s += x * x;
    for (const x of small) s += x * x;
    expect(Math.abs(norm![0]! / Math.sqrt(s) - 1)).toBeLessThan(1e-5);
    // the carry path alone: three ranges
    await same(
      64 * 1024 + 512,
      async () => {
        const g = Tensor.from(G, [n]);
        const gn = new GradNorm([n]);
        gn.compute([g], 1);
        const out = [await f32(gn.stats)];
        gn.dispose();
        return out;
      },
      "grad norm",
    );
  });

  test("readback and upload of a tensor over the 32 MiB staging piece", async () => {
    const n = 9_000_001; // 36 MB: two pieces each way
    const x = new Float32Array(n);
    for (let i = 0; i < n; i++) x[i] = i * 0.5;
    await scopeAsync(async () => {
      const t = Tensor.from(x, [n]);
      const back = (await t.toArray()) as Float32Array;
      expectSameBits(back, x, "readback");
      const tail = new Float32Array(await readBuffer(t.buffer, 40, (n - 10) * 4));
      expect(Array.from(tail)).toEqual(Array.from(x.subarray(n - 10)));
    });
  });
});
