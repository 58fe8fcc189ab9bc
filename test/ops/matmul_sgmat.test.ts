// The subgroup-matrix matmul (kernels/matmul_sgmat.wgsl) through its emulation, which lavapipe runs:
// it must equal the f32 product of f16-rounded inputs on odd shapes, in every layout, on the H200's
// matrix shapes, and f16-precision matmuls must take it when BUNLM_SUBGROUP_MATRIX says so. The native
// expansion is compiled on Dawn's null adapter (test/gpu/null_adapter.test.ts).
import { afterEach, beforeAll, describe, expect, test } from "bun:test";
import { initGpu, gpu } from "../../lib/gpu/index.ts";
import { InputError } from "../../lib/base/errors.ts";
import { Tensor, scopeAsync } from "../../lib/tensor/index.ts";
import { backward } from "../../lib/ops/backward.ts";
import { matmul, matmulRef, sumRows, mul, withMatmulPrecision } from "../../lib/ops/index.ts";
import {
  dispatchSgmat,
  plainShape,
  resolveSubgroupMatrix,
  sgmatVariants,
  subgroupMatrixPath,
  type MatmulShape,
  type SgmatTarget,
  type SgmatVariant,
} from "../../lib/ops/_matmul_variants.ts";
import { randn, relError } from "../lib/close.ts";

const f16 = Math.f16round; // IEEE binary16, round to nearest even, subnormals kept
const LAYOUTS = [
  { transA: false, transB: false },
  { transA: false, transB: true },
  { transA: true, transB: false },
  { transA: true, transB: true },
];
// Products of f16 values are exact in f32 (11 + 11 significant bits), so the kernel differs from the
// f64 reference on f16-rounded inputs only by its f32 sums: normwise ~sqrt(K)·2^-24 (4e-7 at K = 53),
// bound 1e-5. Rounding the inputs moves the product by ~2^-12 ≈ 2.4e-4, so a kernel that skipped or
// botched the rounding fails the bound; the second check says the rounding happened at all.
const REL = 1e-5;

let emulated: SgmatTarget;
let tiling: SgmatVariant;

beforeAll(async () => {
  await initGpu();
  emulated = resolveSubgroupMatrix("emulate", gpu())!;
  tiling = sgmatVariants(emulated, gpu().limits)[0]!;
});

const savedEnv = process.env.BUNLM_SUBGROUP_MATRIX;
afterEach(() => {
  if (savedEnv === undefined) delete process.env.BUNLM_SUBGROUP_MATRIX;
  else process.env.BUNLM_SUBGROUP_MATRIX = savedEnv;
});

/** One launch of the subgroup-matrix kernel on flat buffers; C starts as `c0` (ACCUMULATE) or empty. */
function run(t: SgmatTarget, v: SgmatVariant, A: Float32Array, B: Float32Array, s: MatmulShape, c0?: Float32Array) {
  return scopeAsync(async () => {
    const c = c0 ? Tensor.from(c0, [c0.length]) : Tensor.empty([s.batch * s.M * s.N]);
    dispatchSgmat(t, v, c.buffer, Tensor.from(A, [A.length]).buffer, Tensor.from(B, [B.length]).buffer, s);
    return c.toArray();
  });
}

/** The kernel against matmulRef on f16-rounded inputs, for one shape and layout. */
async function check(t: SgmatTarget, v: SgmatVariant, [M, K, N]: number[], l: (typeof LAYOUTS)[number]) {
  const A = randn(M! * K!, M! * 7 + K!).map((x) => x * 3),
    B = randn(K! * N!, N! * 3 + 1);
  const got = await run(t, v, A, B, { ...plainShape(M!, N!, K!), ...l });
  const err = relError(got, matmulRef(A.map(f16), B.map(f16), M!, N!, K!, l));
  expect({ shape: [M, K, N], ...l, err: err < REL }).toEqual({ shape: [M, K, N], ...l, err: true });
  expect(relError(got, matmulRef(A, B, M!, N!, K!, l))).toBeGreaterThan(REL);
}

describe("emulated subgroup-matrix matmul equals the f32 product of f16-rounded inputs", () => {
  test("lavapipe has no subgroup matrices: the emulation takes the H200's first shape, 16×16×16, 32 lanes", () => {
    expect(gpu().subgroupMatrixConfigs).toEqual([]);
    expect(emulated).toEqual({ path: "emulate", M: 16, N: 16, K: 16, subgroupSize: 32 });
  });

  for (const shape of [
    [37, 53, 29],
    [1, 64, 17],
    [130, 7, 66],
  ])
    for (const l of LAYOUTS)
      test(
        `(M,K,N) = (${shape}) transA=${l.transA} transB=${l.transB}`,
        () => check(emulated, tiling, shape, l),
        60_000,
      );

  // a result matrix 16 rows by 8 columns: a swapped row and column anywhere in the emulation (shapes,
  // the column-major flag, strides) puts values in the wrong place
  for (const l of LAYOUTS)
    test(
      `the H200's 16×8×16 shape, transA=${l.transA} transB=${l.transB}`,
      () => check({ ...emulated, M: 16, N: 8, K: 16 }, tiling, [37, 53, 29], l),
      60_000,
    );
  test(
    "the H200's 16×8×8 shape, Aᵀ·Bᵀ",
    () => check({ ...emulated, M: 16, N: 8, K: 8 }, tiling, [37, 53, 29], LAYOUTS[3]!),
    60_000,
  );

  test("every emulated tiling", async () => {
    const all = sgmatVariants(emulated, gpu().limits);
    expect(all.length).toBeGreaterThan(1);
    for (const v of all) await check(emulated, v, [37, 53, 29], LAYOUTS[1]!);
  }, 60_000);

  test(
    "a subgroup of 24 lanes, which does not divide a matrix's 256 elements",
    () => check({ ...emulated, subgroupSize: 24 }, tiling, [37, 53, 29], LAYOUTS[0]!),
    60_000,
  );

  test("ACCUMULATE over a batch of 3 with a shared B (stride 0)", async () => {
    const [Z, M, K, N] = [3, 21, 19, 35];
    const A = randn(Z * M * K, 1),
      B = randn(K * N, 2),
      C0 = randn(Z * M * N, 3);
    const s = { ...plainShape(M, N, K), batch: Z, accumulate: true, strideA: M * K, strideB: 0, strideC: M * N };
    const got = await run(emulated, tiling, A, B, s, C0);
    const prod = matmulRef(A.map(f16), B.map(f16), M, N, K, { batch: Z, shareB: true });
    // C0 + product: each output one more f32 rounding than the product alone
    expect(
      relError(
        got,
        prod.map((x, i) => x + C0[i]!),
      ),
    ).toBeLessThan(REL);
  }, 60_000);

  test("f16's range: 65519 rounds to 65504, past it ±inf (the loss scaler's signal), NaN stays, subnormals stay", async () => {
    const A = Float32Array.from([65519, 70000, -1e6, Number.NaN, 3e-6, -6e-8, 1 + 2 ** -11, 1 + 3 * 2 ** -11]);
    const got = await run(emulated, tiling, A, Float32Array.from([1]), plainShape(A.length, 1, 1));
    expect(Array.from(got)).toEqual([65504, Infinity, -Infinity, Number.NaN, f16(3e-6), -(2 ** -24), 1, 1 + 2 ** -9]);
    expect(f16(3e-6)).toBe(50 * 2 ** -24); // an f16 subnormal, not zero
  }, 60_000);
});

describe("BUNLM_SUBGROUP_MATRIX picks the kernel of f16-precision matmuls", () => {
  test("unset or off on lavapipe: off; native: an error naming the adapter; anything else: an error", () => {
    delete process.env.BUNLM_SUBGROUP_MATRIX;
    expect(subgroupMatrixPath()).toBe("off");
    process.env.BUNLM_SUBGROUP_MATRIX = "off";
    expect(subgroupMatrixPath()).toBe("off");
    process.env.BUNLM_SUBGROUP_MATRIX = "emulate";
    expect(subgroupMatrixPath()).toBe("emulate");
    process.env.BUNLM_SUBGROUP_MATRIX = "native";
    expect(() => subgroupMatrixPath()).toThrow(InputError);
    expect(() => subgroupMatrixPath()).toThrow("BUNLM_SUBGROUP_MATRIX=native: the adapter");
    expect(() => subgroupMatrixPath()).toThrow("has no subgroup matrices; use emulate or off");
    process.env.BUNLM_SUBGROUP_MATRIX = "tensor";
    expect(() => subgroupMatrixPath()).toThrow("BUNLM_SUBGROUP_MATRIX=tensor: expected native, emulate or off");
  });

  // An f16 subnormal tells the kernels apart: the emulation rounds to it as IEEE (and tensor cores)
  // do, the tiled kernels' quantizeToF16 flushes it to zero on lavapipe. One subnormal term (3e-6·1)
  // in out[0][0] (A·Wᵀ), dA[0][0] (R·W) and dW[0][0] (Rᵀ·A), against f32 sums of 5-19 terms of size
  // ~1 (error ~1e-7).
  test("emulate routes forward and backward through the emulated kernel; off does not", async () => {
    const [M, K, N] = [19, 5, 11];
    const A = randn(M * K, 21),
      W = randn(N * K, 22),
      R = randn(M * N, 23);
    [A[0], W[0], R[0], A[K], R[N]] = [3e-6, 1, 3e-6, 3e-6, 1];
    const runAll = () =>
      withMatmulPrecision("f16", () =>
        scopeAsync(async () => {
          const a = Tensor.from(A, [M, K]).param(),
            w = Tensor.from(W, [N, K]).param();
          const out = matmul(a, w, { transB: true });
          backward(sumRows(mul(out, Tensor.from(R, [M, N]))));
          const r = [await out.toArray(), await a.grad!.toArray(), await w.grad!.toArray()];
          a.grad!.dispose();
          w.grad!.dispose();
          return r;
        }),
      );
    const refs = (q: (x: number) => number) => {
      const [a, w, r] = [A.map(q), W.map(q), R.map(q)];
      return [
        matmulRef(a, w, M, N, K, { transB: true }),
        matmulRef(r, w, M, K, N),
        matmulRef(r, a, N, K, M, { transA: true }),
      ];
    };
    const keep = refs(f16),
      flush = refs((x) => (Math.abs(x) < 2 ** -14 ? 0 : f16(x)));
    const closer = (got: Float32Array[], to: Float32Array[], away: Float32Array[]) =>
      got.map((g, i) => Math.abs(g[0]! - to[i]![0]!) < 1e-6 && Math.abs(g[0]! - away[i]![0]!) > 2e-6);

    process.env.BUNLM_SUBGROUP_MATRIX = "emulate";
    const emu = await runAll();
    for (let i = 0; i < 3; i++) expect(relError(emu[i]!, keep[i]!)).toBeLessThan(REL);
    expect(closer(emu, keep, flush)).toEqual([true, true, true]);

    process.env.BUNLM_SUBGROUP_MATRIX = "off";
    const off = await runAll();
    expect(closer(off, flush, keep)).toEqual([true, true, true]);
  }, 60_000);
});
