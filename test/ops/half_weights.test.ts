// Half-width weights (bf16 / f16 tensors, two values per 32-bit word): matmul's B operand and the
// embedding table widen each value exactly as they load it, so every kernel variant must give the bits
// of the same kernel over the widened f32 values: the tiled kernels (every candidate), the subgroup
// one, the skinny decode kernel, the tiled kernel with f16 inputs and the subgroup-matrix emulation
// (--precision mixed), the fusions, the split path under a small binding cap, and the gather. Odd K
// and N put rows and windows on odd 16-bit elements, the high half of a word. Every other op refuses
// a half tensor instead of reading its word pairs as f32.
import { afterEach, beforeAll, describe, expect, test } from "bun:test";
import { dispatchStats, gpu, initGpu, poolStats, setMaxBinding } from "../../lib/gpu/index.ts";
import { Tensor, scopeAsync } from "../../lib/tensor/index.ts";
import type { HalfDType } from "../../lib/tensor/tensor.ts";
import { matmul, matmulInto, matmulRef } from "../../lib/ops/matmul.ts";
import {
  dispatchSgmat,
  dispatchSkinny,
  dispatchVariant,
  matmulCandidates,
  resolveSubgroupMatrix,
  sgmatVariants,
  withMatmulPrecision,
  plainShape,
  type MatmulShape,
  type MatmulVariant,
} from "../../lib/ops/_matmul_variants.ts";
import { embedding, embeddingRef } from "../../lib/ops/embedding.ts";
import { add } from "../../lib/ops/elementwise.ts";
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "../../lib/io/floats.ts";
import { randn, relError } from "../lib/close.ts";

beforeAll(async () => {
  await initGpu();
});
afterEach(() => setMaxBinding(null));

const HALVES: HalfDType[] = ["bf16", "f16"];

/** Random weights as a half format's words and their exact f32 values; f16 includes subnormals. */
function weights(n: number, seed: number, dtype: HalfDType): { words: Uint16Array; wide: Float32Array } {
  const x = randn(n, seed);
  if (dtype === "f16") for (let i = 0; i < n; i += 7) x[i] = x[i]! * 2 ** -16; // below 2^-14: subnormal f16
  const words = dtype === "bf16" ? f32ToBf16(x) : f32ToF16(x);
  return { words, wide: dtype === "bf16" ? bf16ToF32(words) : f16ToF32(words) };
}

function expectSameBits(a: Float32Array, b: Float32Array, label: string): void {
  expect(b.length).toBe(a.length);
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length),
    y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  let first = -1;
  for (let i = 0; i < x.length && first < 0; i++) if (x[i] !== y[i]) first = i;
  expect(first === -1 ? "same bits" : `${label}: element ${first}: ${a[first]} vs ${b[first]}`).toBe("same bits");
}

type Launch = (c: GPUBuffer, a: GPUBuffer, b: GPUBuffer, s: MatmulShape) => void;

/**
 * One launch over f32 B and over half B holding the same values: the same bits, and close to the
 * f64 reference (so that two equally wrong results cannot pass). M rows, op(B) (K, N).
 */
async function sameAsF32(
  launch: Launch,
  dtype: HalfDType,
  [M, N, K]: [number, number, number],
  transB: boolean,
  rel = 1e-4,
) {
  const A = randn(M * K, M + 3 * K);
  const { words, wide } = weights(N * K, N + K, dtype);
  const s: MatmulShape = { ...plainShape(M, N, K), transB };
  const [f, h] = await scopeAsync(async () => {
    const a = Tensor.from(A, [M, K]);
    const bf = Tensor.from(wide, transB ? [N, K] : [K, N]),
      bh = Tensor.from(words, transB ? [N, K] : [K, N], dtype);
    const cf = Tensor.empty([M, N]),
      ch = Tensor.empty([M, N]);
    launch(cf.buffer, a.buffer, bf.buffer, s);
    launch(ch.buffer, a.buffer, bh.storage, { ...s, halfB: dtype });
    return [(await cf.toArray()) as Float32Array, (await ch.toArray()) as Float32Array];
  });
  expectSameBits(f!, h!, `${dtype} (${M}, ${N}, ${K}) transB=${transB}`);
  expect(relError(f!, matmulRef(A, wide, M, N, K, { transB }))).toBeLessThan(rel);
}

/** The first candidate of each kernel this adapter has (matmul_subgroup only with 8-wide subgroups). */
function kernels(): MatmulVariant[] {
  const all = matmulCandidates();
  return ["matmul", "matmul_subgroup"].flatMap((k) => all.filter((v) => v.kernel === k).slice(0, 1));
}

const LAYOUTS = [true, false]; // transB (a linear layer: x·Wᵀ), and B as stored (backward's dC·W)

describe("matmul with a half-width B = the same kernel over the widened f32 B, bit for bit", () => {
  for (const dtype of HALVES) {
    test(`${dtype}: the tiled and the subgroup kernel, both layouts`, async () => {
      // one candidate of each kernel: the tilings differ only in constants, the loads of B are one text
      for (const v of kernels())
        for (const transB of LAYOUTS)
          await sameAsF32((c, a, b, s) => dispatchVariant(v, c, a, b, s), dtype, [37, 29, 19], transB);
    });

    test(`${dtype}: the subgroup kernel's vec4 loads of B (N and the row stride multiples of 4)`, async () => {
      for (const v of kernels().filter((x) => x.kernel === "matmul_subgroup"))
        await sameAsF32((c, a, b, s) => dispatchVariant(v, c, a, b, s), dtype, [20, 44, 13], false);
    });

    test(`${dtype}: the skinny decode kernel, 1 to 8 rows`, async () => {
      for (const M of [1, 3, 8])
        for (const transB of LAYOUTS)
          await sameAsF32((c, a, b, s) => dispatchSkinny(c, a, b, s), dtype, [M, 67, 31], transB);
    });

    test(`${dtype}: f16 inputs (--precision mixed on the tiled kernel) and the subgroup-matrix emulation`, async () => {
      // A rounded to f16 (2^-11 relative) against the f64 reference of the unrounded product
      const rel = 2e-3;
      const v = matmulCandidates().find((x) => x.kernel === "matmul")!;
      await withMatmulPrecision("f16", () =>
        sameAsF32((c, a, b, s) => dispatchVariant(v, c, a, b, s), dtype, [37, 29, 19], true, rel),
      );
      await withMatmulPrecision("f16", () =>
        sameAsF32((c, a, b, s) => dispatchSkinny(c, a, b, s), dtype, [2, 29, 19], true, rel),
      );
      if (!gpu().features.has("shader-f16")) return; // the emulation needs f16 arithmetic
      const t = resolveSubgroupMatrix("emulate", gpu())!;
      const tiling = sgmatVariants(t, gpu().limits)[0]!;
      for (const transB of LAYOUTS)
        await sameAsF32((c, a, b, s) => dispatchSgmat(t, tiling, c, a, b, s), dtype, [37, 29, 19], transB, rel);
    });

    test(`${dtype}: matmul() and its fusions (residual; SwiGLU as A loads) through matmulInto`, async () => {
      const [M, N, K] = [24, 21, 17];
      const { words, wide } = weights(N * K, 5, dtype);
      const G = randn(M * K, 6),
        U = randn(M * K, 7),
        R = randn(M * N, 8);
      const run = (half: boolean) =>
        scopeAsync(async () => {
          const w = half ? Tensor.from(words, [N, K], dtype) : Tensor.from(wide, [N, K]);
          const g = Tensor.from(G, [M, K]);
          const plain = matmul(g, w, { transB: true, residual: Tensor.from(R, [M, N]) });
          const fused = matmulInto(
            Tensor.empty([M, N]),
            g,
            w,
            { ...plainShape(M, N, K), transB: true },
            {
              swigluUp: Tensor.from(U, [M, K]),
              residual: Tensor.from(R, [M, N]),
            },
          );
          return [(await plain.toArray()) as Float32Array, (await fused.toArray()) as Float32Array];
        });
      const [f, h] = [await run(false), await run(true)];
      expectSameBits(f[0]!, h[0]!, "residual");
      expectSameBits(f[1]!, h[1]!, "SwiGLU and residual");
    });

    test(`${dtype}: split into windows under a small binding cap (2 bytes an element), bit for bit`, async () => {
      // B (97, 83) half is 16 KB: over a 2 KiB cap, split along N and K; odd K puts windows on odd elements
      const [M, N, K] = [5, 97, 83];
      const A = randn(M * K, 11),
        A2 = randn(40 * K, 12);
      const { words, wide } = weights(N * K, 13, dtype);
      const run = (half: boolean) =>
        scopeAsync(async () => {
          const w = half ? Tensor.from(words, [N, K], dtype) : Tensor.from(wide, [N, K]);
          const out: Float32Array[] = [];
          for (const x of [Tensor.from(A, [M, K]), Tensor.from(A2, [40, K])])
            out.push((await matmul(x, w, { transB: true }).toArray()) as Float32Array);
          return out;
        });
      const whole = await run(false);
      setMaxBinding(2048);
      const before = dispatchStats().dispatches;
      const split = await run(true);
      expect(dispatchStats().dispatches - before).toBeGreaterThan(2); // really split
      const splitF32 = await run(false);
      setMaxBinding(null);
      expectSameBits(whole[0]!, split[0]!, "skinny, split");
      expectSameBits(whole[1]!, split[1]!, "tiled, split");
      expectSameBits(splitF32[1]!, split[1]!, "tiled, split f32 vs split half");
    });
  }
});

describe("embedding over a half-width table", () => {
  for (const dtype of HALVES)
    test(`${dtype}: the widened rows, bit for bit, whole and in windows of rows; ids outside [0, V) give 0`, async () => {
      const [V, C] = [53, 23];
      const { words, wide } = weights(V * C, 21, dtype);
      const ids = [0, 52, 7, -1, 53, 7, 31, 1, 50];
      const want = embeddingRef(
        wide,
        ids.map((v) => (v < 0 || v >= V ? -1 : v)),
        C,
      );
      ids.forEach((v, t) => v < 0 || (v >= V && want.fill(0, t * C, t * C + C)));
      for (const cap of [null, 1024]) {
        setMaxBinding(cap);
        const got = await scopeAsync(async () => {
          const W = Tensor.from(words, [V, C], dtype);
          return (await embedding(W, Tensor.from(ids, [ids.length], "i32")).toArray()) as Float32Array;
        });
        expectSameBits(want, got, `${dtype} cap ${cap}`);
      }
    });
});

describe("half tensors: sizes, memory, and refusals", () => {
  test("two bytes an element on the device; the raw words come back", async () => {
    const { words } = weights(1001, 31, "bf16");
    const before = poolStats().liveBytes;
    await scopeAsync(async () => {
      const w = Tensor.from(words, [7, 143], "bf16");
      expect(w.bytes).toBe(2002);
      const w32 = Tensor.from(new Float32Array(1001), [7, 143]);
      expect(w32.bytes).toBe(4004);
      expect(Array.from((await w.toArray()) as Uint16Array)).toEqual(Array.from(words));
      // pooled sizes: 2002 → 2048 bytes, 4004 → 4096
      expect(poolStats().liveBytes - before).toBe(2048 + 4096);
    });
  });

  test("an op that reads only f32 throws, naming the tensor; half A, param() and gradients are refused", async () => {
    await scopeAsync(async () => {
      const w = Tensor.from(new Uint16Array(12), [3, 4], "f16");
      const x = Tensor.from(new Float32Array(12), [3, 4]);
      expect(() => add(x, w)).toThrow("a f16 tensor [3,4] (half-width weights) reached an op that reads only f32");
      expect(() => matmul(w, x, { transB: true })).toThrow("matmul: A is f16 [3,4]; only B may be half-width");
      expect(() => w.param()).toThrow("a f16 tensor [3,4] cannot be trained");
      expect(() => Tensor.view(w, [12], "f32")).toThrow("cannot be viewed as f32");
      const fake = Tensor.from(new Uint16Array(12), [3, 4], "bf16");
      fake.requiresGrad = true; // what param() refuses, set by hand
      expect(() => matmul(x, fake, { transB: true })).toThrow("cannot take a gradient");
      expect(() => embedding(fake, Tensor.from([0], [1], "i32"))).toThrow("cannot take a gradient");
    });
  });
});
