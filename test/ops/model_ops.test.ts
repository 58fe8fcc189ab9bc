// The transformer's other ops against their CPU references on odd shapes, forward and backward.
import { beforeAll, describe, expect, test } from "bun:test";
import { initGpu } from "../../lib/gpu/index.ts";
import { Tensor, scopeAsync, backward } from "../../lib/tensor/index.ts";
import { mul, sumRows } from "../../lib/ops/index.ts";
import { reshape } from "../../lib/ops/shape.ts";
import { rmsnorm, rmsnormForward, rmsnormBackward } from "../../lib/ops/rmsnorm.ts";
import { rope, ropeRef } from "../../lib/ops/rope.ts";
import { swiglu, swigluForward, swigluBackward } from "../../lib/ops/swiglu.ts";
import { embedding, embeddingForward, embeddingBackward } from "../../lib/ops/embedding.ts";
import { crossEntropy, crossEntropyRef, logprobs, logprobsRef, IGNORE_INDEX } from "../../lib/ops/cross_entropy.ts";
import { randn, relError, finiteDiff, expectAllClose } from "../lib/close.ts";

beforeAll(async () => {
  await initGpu();
});

/** Σ out ⊙ R for a fixed random R: its gradient wrt out is R */
function weighted(out: Tensor, R: Float32Array): Tensor {
  const C = out.shape[out.shape.length - 1]!;
  const rows = out.size / C;
  return sumRows(reshape(sumRows(mul(reshape(out, [rows, C]), Tensor.from(R, [rows, C]))), [1, rows]));
}

describe("rmsnorm", () => {
  for (const [R, C] of [[1, 1], [7, 13], [129, 65], [64, 512]] as const) {
    test(`(${R}, ${C})`, async () => {
      const X = randn(R * C, 1), W = randn(C, 2), dY = randn(R * C, 3);
      const [y, dx, dw] = await scopeAsync(async () => {
        const x = Tensor.from(X, [R, C]).param(), w = Tensor.from(W, [C]).param();
        const out = rmsnorm(x, w, 1e-5);
        backward(weighted(out, dY));
        return [await out.toArray(), await x.grad!.toArray(), await w.grad!.toArray()];
      });
      const ref = rmsnormBackward(X, W, dY, R, C, 1e-5);
      expect(relError(y!, rmsnormForward(X, W, R, C, 1e-5).y)).toBeLessThan(1e-5);
      // dx = rstd·(g - x·rstd²·mean(g·x)) cancels to ~eps/(x²+eps) when C is 1: compare with an
      // absolute floor of f32 rounding on the O(1) terms
      expectAllClose(dx!, ref.dx, { atol: 1e-6, rtol: 1e-4, label: "dx" });
      expect(relError(dw!, ref.dw)).toBeLessThan(1e-5);
    });
  }
  test("reference backward = finite differences", () => {
    const [R, C] = [3, 5];
    const X = randn(R * C, 4), W = randn(C, 5), dY = randn(R * C, 6);
    const f = (x: ArrayLike<number>, w: ArrayLike<number>) => rmsnormForward(Float32Array.from(x), Float32Array.from(w), R, C, 1e-5).y.reduce((a, y, i) => a + y * dY[i]!, 0);
    const g = rmsnormBackward(X, W, dY, R, C, 1e-5);
    expectAllClose(g.dx, finiteDiff((x) => f(x, W), X, 1e-3), { atol: 1e-3, rtol: 1e-3, label: "dx" });
    expectAllClose(g.dw, finiteDiff((w) => f(X, w), W, 1e-3), { atol: 1e-3, rtol: 1e-3, label: "dw" });
  });
});

describe("rope (rotate-half)", () => {
  test("forward and backward on (23 tokens, 3 heads, 16), positions with restarts", async () => {
    const [N, NH, D] = [23, 3, 16];
    const X = randn(N * NH * D, 7), dY = randn(N * NH * D, 8);
    const pos = Int32Array.from({ length: N }, (_, i) => (i < 11 ? i : i - 11) + (i > 19 ? 100 : 0));
    const [y, dx] = await scopeAsync(async () => {
      const x = Tensor.from(X, [N, NH, D]).param();
      const out = rope(x, Tensor.from(pos, [N], "i32"), 10000);
      backward(weighted(out, dY));
      return [await out.toArray(), await x.grad!.toArray()];
    });
    expect(relError(y!, ropeRef(X, pos, N, NH, D, 10000))).toBeLessThan(1e-5);
    // a rotation's gradient is the inverse rotation of the upstream gradient
    expect(relError(dx!, ropeRef(dY, pos, N, NH, D, 10000, -1))).toBeLessThan(1e-5);
  });
});

describe("swiglu", () => {
  for (const n of [1, 7 * 13, 129 * 65 * 3]) {
    test(`n = ${n}`, async () => {
      const G = randn(n, 9).map((x) => 4 * x), U = randn(n, 10), dH = randn(n, 11);
      const [h, dg, du] = await scopeAsync(async () => {
        const g = Tensor.from(G, [n]).param(), u = Tensor.from(U, [n]).param();
        const out = swiglu(g, u);
        backward(weighted(out, dH));
        return [await out.toArray(), await g.grad!.toArray(), await u.grad!.toArray()];
      });
      const ref = swigluBackward(G, U, dH);
      expect(relError(h!, swigluForward(G, U))).toBeLessThan(1e-5);
      expect(relError(dg!, ref.dg)).toBeLessThan(1e-5);
      expect(relError(du!, ref.du)).toBeLessThan(1e-5);
    });
  }
  test("reference backward = finite differences", () => {
    const G = randn(9, 12).map((x) => 3 * x), U = randn(9, 13), dH = randn(9, 14);
    const f = (g: ArrayLike<number>, u: ArrayLike<number>) => swigluForward(Float32Array.from(g), Float32Array.from(u)).reduce((a, y, i) => a + y * dH[i]!, 0);
    const r = swigluBackward(G, U, dH);
    expectAllClose(r.dg, finiteDiff((g) => f(g, U), G, 1e-3), { atol: 1e-3, rtol: 1e-3, label: "dg" });
    expectAllClose(r.du, finiteDiff((u) => f(G, u), U, 1e-3), { atol: 1e-3, rtol: 1e-3, label: "du" });
  });
});

describe("embedding", () => {
  test("lookup and scatter-add gradient with repeated ids", async () => {
    const [V, C, N] = [61, 13, 29];
    const W = randn(V * C, 15), dY = randn(N * C, 16);
    const ids = Int32Array.from({ length: N }, (_, i) => (i * 7) % 11); // repeats
    const [y, dw] = await scopeAsync(async () => {
      const w = Tensor.from(W, [V, C]).param();
      const out = embedding(w, Tensor.from(ids, [N], "i32"));
      backward(weighted(out, dY));
      return [await out.toArray(), await w.grad!.toArray()];
    });
    expectAllClose(y!, embeddingForward(W, ids, C), { rtol: 0, label: "forward" });
    expect(relError(dw!, embeddingBackward(dY, ids, V, C))).toBeLessThan(1e-6);
  });
});

describe("cross entropy and log-probs", () => {
  for (const [N, V, eps] of [[1, 1, 0], [7, 61, 0], [33, 257, 0.1], [16, 8192, 0]] as const) {
    test(`(${N}, ${V}) smoothing ${eps}, with ignored rows`, async () => {
      const Z = randn(N * V, 17).map((x) => 3 * x);
      const T = Int32Array.from({ length: N }, (_, i) => (i % 5 === 3 ? IGNORE_INDEX : (i * 31) % V));
      const [loss, dz] = await scopeAsync(async () => {
        const z = Tensor.from(Z, [N, V]).param();
        const l = crossEntropy(z, Tensor.from(T, [N], "i32"), { labelSmoothing: eps });
        const lv = await l.toArray();
        backward(l);
        return [lv[0]!, await z.grad!.toArray()];
      });
      const ref = crossEntropyRef(Z, T, N, V, { labelSmoothing: eps });
      expect(Math.abs(loss - ref.loss)).toBeLessThan(1e-5 * Math.max(1, Math.abs(ref.loss)));
      expect(relError(dz, ref.dz)).toBeLessThan(1e-5);
    });
  }

  test("a given normalizer replaces the count (loss over a whole accumulation window)", async () => {
    const [N, V] = [6, 10];
    const Z = randn(N * V, 18), T = Int32Array.from([1, 2, 3, 4, 5, 6]);
    const loss = await scopeAsync(async () => (await crossEntropy(Tensor.from(Z, [N, V]), Tensor.from(T, [N], "i32"), { normalizer: 24 }).toArray())[0]!);
    expect(loss).toBeCloseTo(crossEntropyRef(Z, T, N, V, { normalizer: 24 }).loss, 5);
  });

  test("reference gradient = finite differences", () => {
    const [N, V] = [3, 7];
    const Z = randn(N * V, 19), T = [2, IGNORE_INDEX, 6];
    const r = crossEntropyRef(Z, T, N, V, { labelSmoothing: 0.2 });
    expectAllClose(r.dz, finiteDiff((z) => crossEntropyRef(Float32Array.from(z), T, N, V, { labelSmoothing: 0.2 }).loss, Z, 1e-3), { atol: 1e-4, rtol: 1e-3, label: "dz" });
  });

  test("log-probs forward and backward", async () => {
    const [N, V] = [9, 50];
    const Z = randn(N * V, 20), T = Int32Array.from({ length: N }, (_, i) => (i === 4 ? IGNORE_INDEX : i * 3)), dO = randn(N, 21);
    const [lp, dz] = await scopeAsync(async () => {
      const z = Tensor.from(Z, [N, V]).param();
      const out = logprobs(z, Tensor.from(T, [N], "i32"));
      const v = await out.toArray();
      backward(sumRows(reshape(mul(out, Tensor.from(dO, [N])), [1, N])));
      return [v, await z.grad!.toArray()];
    });
    const ref = logprobsRef(Z, T, N, V, dO);
    expect(relError(lp!, ref.lp)).toBeLessThan(1e-6);
    expect(relError(dz!, ref.dz)).toBeLessThan(1e-5);
  });
});

describe("rope on part of each head (latent attention's RoPE dims)", () => {
  test("rotates dims [6, 10) of 14, passes the rest through; backward is the inverse rotation", async () => {
    const [N, NH, D, R, off] = [9, 2, 14, 4, 6];
    const X = randn(N * NH * D, 41), dY = randn(N * NH * D, 42);
    const pos = Int32Array.from({ length: N }, (_, i) => 3 * i);
    const [y, dx] = await scopeAsync(async () => {
      const x = Tensor.from(X, [N, NH, D]).param();
      const out = rope(x, Tensor.from(pos, [N], "i32"), 500, { offset: off, dims: R });
      backward(weighted(out, dY));
      return [await out.toArray(), await x.grad!.toArray()];
    });
    const want = ropeRef(X, pos, N, NH, D, 500, 1, R, off);
    expect(relError(y!, want)).toBeLessThan(1e-5);
    for (let i = 0; i < want.length; i++) if (i % D < off || i % D >= off + R) expect(y![i]).toBe(X[i]!);
    expect(relError(dx!, ropeRef(dY, pos, N, NH, D, 500, -1, R, off))).toBeLessThan(1e-5);
  });
});

describe("head slices and the latent key", () => {
  test("slice forward/backward; latent key forward and both gradients (the shared part summed over heads)", async () => {
    const { headSlice, headSliceRef, latentKey, latentKeyRef } = await import("../../lib/ops/head_slice.ts");
    const [N, H, DX, W, DR] = [7, 3, 11, 5, 4];
    const X = randn(N * H * DX, 51), R = randn(N * DR, 52), dS = randn(N * H * 6, 53), dK = randn(N * H * (W + DR), 54);
    const [s, dxs, k, dxk, dr] = await scopeAsync(async () => {
      const x = Tensor.from(X, [N, H, DX]).param(), r = Tensor.from(R, [N, DR]).param();
      const sl = headSlice(x, 4, 6);
      backward(weighted(sl, dS));
      const g1 = await x.grad!.toArray();
      x.grad!.dispose();
      x.grad = null;
      const kk = latentKey(x, W, r);
      backward(weighted(kk, dK));
      return [await sl.toArray(), g1, await kk.toArray(), await x.grad!.toArray(), await r.grad!.toArray()];
    });
    expect(Array.from(s!)).toEqual(Array.from(headSliceRef(X, N, H, DX, 4, 6)));
    expect(Array.from(k!)).toEqual(Array.from(latentKeyRef(X, R, N, H, DX, W, DR)));
    const wantDxs = new Float32Array(N * H * DX), wantDxk = new Float32Array(N * H * DX), wantDr = new Float64Array(N * DR);
    for (let nh = 0; nh < N * H; nh++) {
      for (let c = 0; c < 6; c++) wantDxs[nh * DX + 4 + c] = dS[nh * 6 + c]!;
      for (let c = 0; c < W; c++) wantDxk[nh * DX + c] = dK[nh * (W + DR) + c]!;
      for (let c = 0; c < DR; c++) wantDr[Math.floor(nh / H) * DR + c] += dK[nh * (W + DR) + W + c]!;
    }
    expect(Array.from(dxs!)).toEqual(Array.from(wantDxs));
    expect(Array.from(dxk!)).toEqual(Array.from(wantDxk));
    expect(relError(dr!, wantDr)).toBeLessThan(1e-6);
  });
});
