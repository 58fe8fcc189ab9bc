import { afterEach, beforeAll, describe, expect, test } from "bun:test";
import { initGpu, dispatchStats } from "../../lib/gpu/index.ts";
import { Tensor, scopeAsync } from "../../lib/tensor/index.ts";
import { backward } from "../../lib/ops/backward.ts";
import { add, matmul, matmulRef, sumRows, mul, matmulCandidates, withMatmulPrecision } from "../../lib/ops/index.ts";
import { swiglu } from "../../lib/ops/swiglu.ts";
import { matmulVariant } from "../../lib/ops/_matmul_variants.ts";
import { dispatchVariant, plainShape } from "../../lib/ops/_matmul_variants.ts";
import { expectAllClose, relError, randn, finiteDiff } from "../lib/close.ts";

beforeAll(async () => {
  await initGpu();
});

// f32 accumulation over K terms against an f64 reference: normwise relative error grows like
// sqrt(K)·2^-24 ≈ 1.4e-6 at K=512; the bound is 1e-4.
const REL = 1e-4;
const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [7, 13, 5],
  [129, 65, 257],
  [512, 512, 512],
];
const LAYOUTS = [
  { transA: false, transB: false },
  { transA: false, transB: true },
  { transA: true, transB: false },
];

describe("matmul forward vs CPU reference", () => {
  for (const [M, K, N] of SHAPES)
    for (const l of LAYOUTS) {
      test(`(${M},${K},${N}) transA=${l.transA} transB=${l.transB}`, async () => {
        const A = randn(M * K, M * 7 + K),
          B = randn(K * N, N * 3 + 1);
        const got = await scopeAsync(async () => {
          const a = Tensor.from(A, l.transA ? [K, M] : [M, K]);
          const b = Tensor.from(B, l.transB ? [N, K] : [K, N]);
          const c = matmul(a, b, l);
          expect(c.shape).toEqual([M, N]);
          return c.toArray();
        });
        const want = matmulRef(A, B, M, N, K, l);
        expect(relError(got, want)).toBeLessThan(REL);
      });
    }

  test("batched (3, 33, 17)·(3, 17, 9) and a shared 2-D b", async () => {
    const [Z, M, K, N] = [3, 33, 17, 9];
    const A = randn(Z * M * K, 1),
      B = randn(Z * K * N, 2),
      W = randn(K * N, 3);
    const [c, s] = await scopeAsync(async () => {
      const a = Tensor.from(A, [Z, M, K]);
      return [await matmul(a, Tensor.from(B, [Z, K, N])).toArray(), await matmul(a, Tensor.from(W, [K, N])).toArray()];
    });
    expect(relError(c!, matmulRef(A, B, M, N, K, { batch: Z }))).toBeLessThan(REL);
    expect(relError(s!, matmulRef(A, W, M, N, K, { batch: Z, shareB: true }))).toBeLessThan(REL);
  });

  test("every autotune candidate is exact on an odd shape", async () => {
    const [M, K, N] = [37, 29, 45];
    const A = randn(M * K, 11),
      B = randn(K * N, 12);
    const want = matmulRef(A, B, M, N, K);
    for (const v of matmulCandidates()) {
      const got = await scopeAsync(async () => {
        const a = Tensor.from(A, [M, K]),
          b = Tensor.from(B, [K, N]),
          c = Tensor.empty([M, N]);
        dispatchVariant(v, c.buffer, a.buffer, b.buffer, plainShape(M, N, K));
        return c.toArray();
      });
      expect(relError(got, want)).toBeLessThan(REL);
    }
    expect(matmulCandidates()).toContainEqual(matmulVariant());
  }, 120_000); // compiles every candidate: 0.2-2.5 s each on lavapipe
});

describe("matmul backward vs finite differences", () => {
  // loss = Σ (op(A)·op(B)) ⊙ R for a fixed random R, so dC = R and every entry of dA, dB is exercised.
  const cases = [
    { Z: 1, M: 5, K: 7, N: 3, transA: false, transB: false, share: false },
    { Z: 1, M: 4, K: 6, N: 5, transA: false, transB: true, share: false },
    { Z: 1, M: 6, K: 3, N: 4, transA: true, transB: false, share: false },
    { Z: 2, M: 3, K: 5, N: 4, transA: false, transB: false, share: false },
    { Z: 2, M: 3, K: 4, N: 5, transA: true, transB: true, share: false },
    { Z: 3, M: 4, K: 5, N: 2, transA: false, transB: false, share: true },
    { Z: 3, M: 2, K: 3, N: 4, transA: false, transB: true, share: true },
  ];
  for (const c of cases) {
    test(JSON.stringify(c), async () => {
      const { Z, M, K, N, transA, transB, share } = c;
      const A = randn(Z * M * K, 5),
        B = randn((share ? 1 : Z) * K * N, 6),
        R = randn(Z * M * N, 7);
      const aShape = Z > 1 ? [Z, ...(transA ? [K, M] : [M, K])] : transA ? [K, M] : [M, K];
      const bCore = transB ? [N, K] : [K, N];
      const bShape = Z > 1 && !share ? [Z, ...bCore] : bCore;
      const [dA, dB] = await scopeAsync(async () => {
        const a = Tensor.from(A, aShape).param(),
          b = Tensor.from(B, bShape).param();
        const out = matmul(a, b, { transA, transB });
        const loss = sumRows(mul(out, Tensor.from(R, out.shape)));
        backward(loss);
        const r = [await a.grad!.toArray(), await b.grad!.toArray()];
        a.grad!.dispose();
        b.grad!.dispose();
        return r;
      });
      const lossOf = (a: ArrayLike<number>, b: ArrayLike<number>) => {
        const out = matmulRef(Float32Array.from(a), Float32Array.from(b), M, N, K, {
          transA,
          transB,
          batch: Z,
          shareB: share,
        });
        let s = 0;
        for (let i = 0; i < out.length; i++) s += out[i]! * R[i]!;
        return s;
      };
      // the loss is bilinear, so central differences are exact up to rounding (h=1e-2 keeps that small)
      expectAllClose(
        dA!,
        finiteDiff((x) => lossOf(x, B), A, 1e-2),
        { atol: 1e-3, rtol: 1e-3, label: "dA" },
      );
      expectAllClose(
        dB!,
        finiteDiff((x) => lossOf(A, x), B, 1e-2),
        { atol: 1e-3, rtol: 1e-3, label: "dB" },
      );
    });
  }
});

describe("f16-input matmul (mixed precision's arithmetic)", () => {
  const f16 = (x: number) => {
    // round to the nearest f16 (ties to even), as quantizeToF16 does
    const b = new Float32Array(1),
      u = new Uint32Array(b.buffer);
    b[0] = x;
    const e = ((u[0]! >>> 23) & 0xff) - 127;
    const ulp = 2 ** (Math.max(e, -14) - 10);
    return Math.round(x / ulp) * ulp;
  };
  for (const l of LAYOUTS)
    for (const [M, K, N] of [
      [3, 5, 7],
      [129, 65, 257],
    ] as [number, number, number][]) {
      test(`(${M},${K},${N}) transA=${l.transA} transB=${l.transB} equals the f32 product of f16-rounded inputs`, async () => {
        const { withMatmulPrecision, matmulPrecision } = await import("../../lib/ops/index.ts");
        const A = randn(M * K, 31).map((x) => x * 3),
          B = randn(K * N, 32);
        const got = await withMatmulPrecision("f16", () =>
          scopeAsync(() =>
            matmul(Tensor.from(A, l.transA ? [K, M] : [M, K]), Tensor.from(B, l.transB ? [N, K] : [K, N]), l).toArray(),
          ),
        );
        expect(matmulPrecision()).toBe("f32"); // the scope ended
        const want = matmulRef(A.map(f16), B.map(f16), M, N, K, l);
        // exact products, f32 sums: the same 1e-6 bound as f32; far from the f32-input result
        expect(relError(got, want)).toBeLessThan(1e-5);
        expect(relError(got, matmulRef(A, B, M, N, K, l))).toBeGreaterThan(1e-5);
      });
    }
});

describe("fusions: the same bits as the unfused ops", () => {
  const savedEnv = process.env.BUNLM_SUBGROUP_MATRIX;
  afterEach(() => {
    if (savedEnv === undefined) delete process.env.BUNLM_SUBGROUP_MATRIX;
    else process.env.BUNLM_SUBGROUP_MATRIX = savedEnv;
  });
  const same = (got: ArrayLike<number>, want: ArrayLike<number>, label: string) =>
    expectAllClose(got, want, { atol: 0, rtol: 0, label });
  // one variant of each kernel (their tile sizes only change loop bounds; compiling all takes minutes)
  const kernels = () =>
    ["matmul_subgroup", "matmul"].flatMap((k) => matmulCandidates().find((v) => v.kernel === k) ?? []);

  test("RESIDUAL in each kernel: r + A·B, layouts and a batch with a shared B", async () => {
    // r + acc is add's arithmetic (one f32 rounding of the same two values), so equality is exact
    const [Z, M, K, N] = [2, 37, 29, 45];
    const A = randn(Z * M * K, 21),
      B = randn(K * N, 22),
      R = randn(Z * M * N, 23);
    for (const v of kernels())
      for (const l of LAYOUTS) {
        const [fused, unfused] = await scopeAsync(async () => {
          const a = Tensor.from(A, [Z * M * K]),
            b = Tensor.from(B, [K * N]),
            r = Tensor.from(R, [Z * M * N]);
          const s = { ...plainShape(M, N, K), ...l, batch: Z, strideA: M * K, strideC: M * N };
          const c = Tensor.empty([Z * M * N]),
            p = Tensor.empty([Z * M * N]);
          dispatchVariant(v, c.buffer, a.buffer, b.buffer, s, { residual: r.buffer });
          dispatchVariant(v, p.buffer, a.buffer, b.buffer, s);
          return [await c.toArray(), await add(r, p).toArray()];
        });
        same(fused!, unfused!, `${JSON.stringify(v)} ${JSON.stringify(l)}`);
      }
  }, 120_000);

  test("SWIGLU_A in each kernel: silu(G)⊙U loaded as A, plain and transposed", async () => {
    const [M, K, N] = [37, 29, 45];
    // gates up to ±6: the sigmoid's tails
    const G = randn(M * K, 24).map((x) => 3 * x),
      U = randn(M * K, 25),
      B = randn(K * N, 26);
    for (const v of kernels())
      for (const l of LAYOUTS) {
        const [fused, unfused] = await scopeAsync(async () => {
          const g = Tensor.from(G, [M * K]),
            u = Tensor.from(U, [M * K]),
            b = Tensor.from(B, [K * N]);
          const s = { ...plainShape(M, N, K), ...l };
          const c = Tensor.empty([M * N]),
            p = Tensor.empty([M * N]);
          dispatchVariant(v, c.buffer, g.buffer, b.buffer, s, { swigluUp: u.buffer });
          dispatchVariant(v, p.buffer, swiglu(g, u).buffer, b.buffer, s);
          return [await c.toArray(), await p.toArray()];
        });
        same(fused!, unfused!, `${JSON.stringify(v)} ${JSON.stringify(l)}`);
      }
  }, 120_000);

  // matmul(…, {residual}) against add(residual, matmul(…)): output and every gradient, on each path
  // a product can take: the skinny kernel (M <= 8), the tiled one in f32 and f16, and the emulated
  // subgroup-matrix one (a copy and an accumulating product there)
  const paths: { name: string; M: number; precision: "f32" | "f16"; sgmat?: string }[] = [
    { name: "tiled f32", M: 37, precision: "f32" },
    { name: "skinny", M: 5, precision: "f32" },
    { name: "tiled f16", M: 37, precision: "f16", sgmat: "off" },
    { name: "subgroup-matrix emulation", M: 37, precision: "f16", sgmat: "emulate" },
  ];
  for (const path of paths)
    test(`matmul with a residual, ${path.name}: one dispatch, the sum's bits and gradients`, async () => {
      if (path.sgmat) process.env.BUNLM_SUBGROUP_MATRIX = path.sgmat;
      const [M, K, N] = [path.M, 29, 45];
      const X = randn(M * K, 31),
        W = randn(N * K, 32),
        R = randn(M * N, 33),
        D = randn(M * N, 34);
      const run = (fused: boolean) =>
        withMatmulPrecision(path.precision, () =>
          scopeAsync(async () => {
            const x = Tensor.from(X, [M, K]).param(),
              w = Tensor.from(W, [N, K]).param(),
              r = Tensor.from(R, [M, N]).param();
            const d0 = dispatchStats().dispatches;
            const y = fused ? matmul(x, w, { transB: true, residual: r }) : add(r, matmul(x, w, { transB: true }));
            const n = dispatchStats().dispatches - d0;
            backward(y, Tensor.from(D, [M, N]));
            return {
              n,
              out: await y.toArray(),
              grads: [await x.grad!.toArray(), await w.grad!.toArray(), await r.grad!.toArray()],
            };
          }),
        );
      const fused = await run(true),
        unfused = await run(false);
      expect([fused.n, unfused.n]).toEqual([1, 2]);
      same(fused.out, unfused.out, "out");
      same(fused.grads[2]!, D, "dresidual");
      for (const k of [0, 1]) same(fused.grads[k]!, unfused.grads[k]!, ["dx", "dw"][k]!);
    }, 60_000);
});
