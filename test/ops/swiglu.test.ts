// SwiGLU (silu(g) ⊙ u) against its CPU reference, forward and backward; the reference's backward
// against finite differences of its forward. The fused MLP op (swigluMlp) against the ops it replaces,
// bit for bit, on every path its products take, and against the CPU composition.
import { afterEach, beforeAll, describe, expect, test } from "bun:test";
import { initGpu, dispatchStats } from "../../lib/gpu/index.ts";
import { Tensor, scopeAsync } from "../../lib/tensor/index.ts";
import { backward } from "../../lib/ops/backward.ts";
import { add, matmul, matmulRef, withMatmulPrecision } from "../../lib/ops/index.ts";
import { swiglu, swigluMlp, swigluRef, swigluBackwardRef } from "../../lib/ops/swiglu.ts";
import { rmsnorm } from "../../lib/ops/rmsnorm.ts";
import { checkOp } from "../lib/check_op.ts";
import { randn, finiteDiff, expectAllClose, relError } from "../lib/close.ts";

beforeAll(async () => {
  await initGpu();
});

describe("swiglu", () => {
  for (const n of [1, 7 * 13, 129 * 65 * 3])
    test(`n = ${n}`, () =>
      checkOp({
        // gates up to ±4: the sigmoid's tails, where silu's derivative changes fastest
        inputs: [
          { data: randn(n, 9).map((x) => 4 * x), shape: [n] },
          { data: randn(n, 10), shape: [n] },
        ],
        gpu: (g, u) => swiglu(g, u),
        ref: (g, u) => swigluRef(g, u),
        refBackward: (dh, g, u) => {
          const r = swigluBackwardRef(g, u, dh);
          return [r.dg, r.du];
        },
        tol: { forward: 1e-5, backward: 1e-5 },
      }));

  test("reference backward = finite differences", () => {
    const G = randn(9, 12).map((x) => 3 * x),
      U = randn(9, 13),
      dH = randn(9, 14);
    const f = (g: ArrayLike<number>, u: ArrayLike<number>) =>
      swigluRef(Float32Array.from(g), Float32Array.from(u)).reduce((a, y, i) => a + y * dH[i]!, 0);
    const r = swigluBackwardRef(G, U, dH);
    expectAllClose(
      r.dg,
      finiteDiff((g) => f(g, U), G, 1e-3),
      { atol: 1e-3, rtol: 1e-3, label: "dg" },
    );
    expectAllClose(
      r.du,
      finiteDiff((u) => f(G, u), U, 1e-3),
      { atol: 1e-3, rtol: 1e-3, label: "du" },
    );
  });
});

describe("swigluMlp: [rmsnorm →] gate, up → swiglu → down [+ residual] as one op", () => {
  const savedEnv = process.env.BUNLM_SUBGROUP_MATRIX;
  afterEach(() => {
    if (savedEnv === undefined) delete process.env.BUNLM_SUBGROUP_MATRIX;
    else process.env.BUNLM_SUBGROUP_MATRIX = savedEnv;
  });
  const [C, I] = [24, 40];
  const lin = (x: Tensor, w: Tensor) => matmul(x, w, { transB: true });
  const data = (R: number) => ({
    X: randn(R * C, 41),
    Wg: randn(I * C, 42).map((v) => v * 0.5), // gates reach ±4 or so: the sigmoid's tails
    Wu: randn(I * C, 43).map((v) => v * 0.3),
    Wd: randn(C * I, 44).map((v) => v * 0.2),
    Res: randn(R * C, 45),
    D: randn(R * C, 46),
    Nw: randn(C, 47).map((v) => 1 + 0.2 * v),
  });

  type Variant = "plain" | "residual" | "prenorm";
  const EPS = 1e-5;

  /**
   * Output, gradients and dispatch counts (forward, backward) of plain: mlp(x); residual: r + mlp(x);
   * prenorm: x + mlp(rmsnorm(x)) — fused, or composed of the ops it replaces.
   */
  function run(R: number, fused: boolean, precision: "f32" | "f16", variant: Variant) {
    const h = data(R);
    return withMatmulPrecision(precision, () =>
      scopeAsync(async () => {
        const x = Tensor.from(h.X, [R, C]).param(),
          wg = Tensor.from(h.Wg, [I, C]).param(),
          wu = Tensor.from(h.Wu, [I, C]).param(),
          wd = Tensor.from(h.Wd, [C, I]).param(),
          r = Tensor.from(h.Res, [R, C]).param(),
          nw = Tensor.from(h.Nw, [C]).param();
        const d0 = dispatchStats().dispatches;
        let y: Tensor;
        if (fused) {
          if (variant === "plain") y = swigluMlp(x, wg, wu, wd);
          else if (variant === "residual") y = swigluMlp(x, wg, wu, wd, { residual: r });
          else y = swigluMlp(x, wg, wu, wd, { residual: x, norm: { weight: nw, eps: EPS } });
        } else {
          const mlp = (n: Tensor) => lin(swiglu(lin(n, wg), lin(n, wu)), wd);
          if (variant === "plain") y = mlp(x);
          else if (variant === "residual") y = add(r, mlp(x));
          else y = add(x, mlp(rmsnorm(x, nw, EPS)));
        }
        const forward = dispatchStats().dispatches - d0;
        const d1 = dispatchStats().dispatches;
        backward(y, Tensor.from(h.D, [R, C]));
        const back = dispatchStats().dispatches - d1;
        const extra = variant === "residual" ? [r] : variant === "prenorm" ? [nw] : [];
        const grads = [];
        for (const t of [x, wg, wu, wd, ...extra]) grads.push(await t.grad!.toArray());
        return { out: await y.toArray(), grads, counts: [forward, back] };
      }),
    );
  }

  // the same products, the same activation expression and the same two-term sums (x's gradient
  // through gate and up, and with prenorm through the norm and the residual; f32 addition commutes),
  // so equality is exact
  const paths: { name: string; R: number; precision: "f32" | "f16"; sgmat?: string; prologue: boolean }[] = [
    { name: "tiled f32", R: 37, precision: "f32", prologue: true },
    { name: "tiled f16", R: 37, precision: "f16", sgmat: "off", prologue: true },
    // a few rows (the skinny kernel) and the subgroup-matrix kernel have no SwiGLU prologue: the
    // activation is materialized there (one dispatch more), the rest still fused
    { name: "skinny", R: 5, precision: "f32", prologue: false },
    { name: "subgroup-matrix emulation", R: 37, precision: "f16", sgmat: "emulate", prologue: false },
  ];
  // forward, backward: fused then unfused
  const COUNTS: Record<Exclude<Variant, "plain">, number[]> = { residual: [3, 7, 5, 8], prenorm: [4, 9, 6, 11] };
  for (const p of paths)
    for (const variant of ["residual", "prenorm"] as const)
      test(`${p.name}, ${variant}: the unfused ops' output and gradients, bit for bit, in fewer dispatches`, async () => {
        if (p.sgmat) process.env.BUNLM_SUBGROUP_MATRIX = p.sgmat;
        const fused = await run(p.R, true, p.precision, variant);
        const unfused = await run(p.R, false, p.precision, variant);
        const want = [...COUNTS[variant]!];
        if (!p.prologue) want[0]!++;
        expect([...fused.counts, ...unfused.counts]).toEqual(want);
        expectAllClose(fused.out, unfused.out, { atol: 0, rtol: 0, label: "out" });
        ["dx", "dgate", "dup", "ddown", variant === "residual" ? "dresidual" : "dnorm"].forEach((label, k) =>
          expectAllClose(fused.grads[k]!, unfused.grads[k]!, { atol: 0, rtol: 0, label }),
        );
      }, 60_000);

  test("without a residual, against the CPU composition of matmulRef and swigluRef", async () => {
    const R = 37;
    const h = data(R);
    const got = await run(R, true, "f32", "plain");
    expect(got.grads.length).toBe(4);
    const g = matmulRef(h.X, h.Wg, R, I, C, { transB: true }),
      u = matmulRef(h.X, h.Wu, R, I, C, { transB: true });
    const want = matmulRef(swigluRef(g, u), h.Wd, R, C, I, { transB: true });
    // f32 sums of 24 and 40 terms against f64: ~1e-7 relative; 1e-5 leaves room, a wrong index does not
    expect(relError(got.out, want)).toBeLessThan(1e-5);
    const dh = matmulRef(h.D, h.Wd, R, I, C);
    const { dg, du } = swigluBackwardRef(g, u, dh);
    const dx = matmulRef(dg, h.Wg, R, C, I).map((v, i) => v + matmulRef(du, h.Wu, R, C, I)[i]!);
    expect(relError(got.grads[0]!, dx)).toBeLessThan(1e-5);
    expect(relError(got.grads[3]!, matmulRef(h.D, swigluRef(g, u), C, I, R, { transA: true }))).toBeLessThan(1e-5);
  }, 60_000);
});
