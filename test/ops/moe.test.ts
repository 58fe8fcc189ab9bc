// Mixture-of-experts ops against their CPU references on odd shapes, gradients against central
// finite differences of the references (f64), and the composed routed layer (router → softmax →
// top-k → plan → gather → grouped SwiGLU experts → weighted combine) against moeRoutedRef.
import { beforeAll, describe, expect, test } from "bun:test";
import { initGpu } from "../../lib/gpu/index.ts";
import { Tensor, scopeAsync } from "../../lib/tensor/index.ts";
import { matmul } from "../../lib/ops/index.ts";
import { swiglu } from "../../lib/ops/swiglu.ts";
import {
  groupedMatmul,
  moeCombine,
  moeGather,
  moePlan,
  moeRoutedRef,
  moeTopk,
  planRef,
  routerSoftmax,
  routerSoftmaxRef,
  sharedGate,
  sharedGateBackwardRef,
  sharedGateRef,
  stackExperts,
  topkRef,
  type TopkOpts,
} from "../../lib/ops/moe.ts";
import { checkOp } from "../lib/check_op.ts";
import { randn } from "../lib/close.ts";

beforeAll(async () => {
  await initGpu();
});

/** Expert ids for N tokens' K slots, distinct within a token, every expert in [0, E). */
function routes(N: number, K: number, E: number, seed: number): Int32Array {
  const r = randn(N * E, seed);
  const out = new Int32Array(N * K);
  for (let t = 0; t < N; t++) {
    const order = Array.from({ length: E }, (_, e) => e).sort((a, b) => r[t * E + a]! - r[t * E + b]!);
    for (let j = 0; j < K; j++) out[t * K + j] = order[j]!;
  }
  return out;
}

describe("router", () => {
  test("softmax, N 13 × E 7", () =>
    checkOp({
      inputs: [{ data: randn(13 * 7, 1).map((x) => 3 * x), shape: [13, 7] }],
      gpu: (l) => routerSoftmax(l),
      ref: (l) => routerSoftmaxRef(l, 13, 7),
      tol: { forward: 1e-6, backward: 2e-4 },
    }));

  for (const [K, o] of [
    [1, { norm: false, scale: 1 }],
    [3, { norm: true, scale: 1 }],
    [2, { norm: false, scale: 2.5 }],
  ] as [number, TopkOpts][])
    test(`top-${K} of 9, ${JSON.stringify(o)}`, () => {
      // values 0.01 apart at least, so the finite differences' steps never reorder them
      const p = Float32Array.from({ length: 11 * 9 }, (_, i) => 0.01 * (((i * 37) % 97) + 1));
      return checkOp({
        inputs: [{ data: p, shape: [11, 9] }],
        gpu: (x) => moeTopk(x, K, o).weights,
        ref: (x) => topkRef(x, 11, 9, K, o).weights,
        h: 1e-3,
        tol: { forward: 1e-6, backward: 1e-4 },
      });
    });

  test("top-k ids: falling order, ties to the lowest id", async () => {
    const p = Float32Array.from([0.2, 0.3, 0.2, 0.3, 0.5, 0.5, 0.1, 0.5]);
    const got = await scopeAsync(async () => [
      ...(await moeTopk(Tensor.from(p, [2, 4]), 3, { norm: true, scale: 1 }).experts.toArray()),
    ]);
    expect(got).toEqual([1, 3, 0, 0, 1, 3]);
    expect([...topkRef(p, 2, 4, 3, { norm: true, scale: 1 }).experts]).toEqual(got);
  });
});

describe("plan: a stable sort of the slots by expert", () => {
  for (const [N, K, E] of [
    [1, 1, 1],
    [37, 2, 5],
    [300, 3, 11],
  ])
    test(`N ${N}, K ${K}, E ${E}`, async () => {
      const ids = routes(N, K, E, N + E);
      const want = planRef(Uint32Array.from(ids), E);
      const got = await scopeAsync(async () => {
        const p = moePlan(Tensor.from(ids, [N, K], "u32"), E);
        return {
          rows: await p.rows.toArray(),
          slotRow: await p.slotRow.toArray(),
          offsets: await p.offsets.toArray(),
          counts: await p.counts.toArray(),
        };
      });
      expect([...got.rows]).toEqual([...want.rows]);
      expect([...got.slotRow]).toEqual([...want.slotRow]);
      expect([...got.offsets]).toEqual([...want.offsets]);
      expect([...got.counts]).toEqual([...want.counts]);
    });
});

// backward 2e-4: the references' f32 outputs differenced with step 1e-3 (rounding ≈ 6e-8 / 1e-3 relative)
describe("gather, grouped matmul, combine (N 9, K 2, E 4, C 5, P 3)", () => {
  const [N, K, E, C, P] = [9, 2, 4, 5, 3];
  const ids = routes(N, K, E, 3);
  const pl = planRef(Uint32Array.from(ids), E);
  const plan = () => moePlan(Tensor.from(ids, [N, K], "u32"), E);

  test("gather", () =>
    checkOp({
      inputs: [{ data: randn(N * C, 4), shape: [N, C] }],
      gpu: (x) => moeGather(x, plan()),
      ref: (x: Float32Array) =>
        Float32Array.from(
          { length: N * K * C },
          (_, i) => x[Math.floor(pl.rows[Math.floor(i / C)]! / K) * C + (i % C)]!,
        ),
      tol: { forward: 0, backward: 2e-4 },
    }));

  test("grouped matmul", () =>
    checkOp({
      inputs: [
        { data: randn(N * K * C, 5), shape: [N * K, C] },
        { data: randn(E * P * C, 6), shape: [E, P, C] },
      ],
      gpu: (a, w) => groupedMatmul(a, w, plan()),
      ref: (a: Float32Array, w: Float32Array) => {
        const out = new Float32Array(N * K * P);
        for (let r = 0; r < N * K; r++) {
          const e = ids[pl.rows[r]!]!;
          for (let p = 0; p < P; p++) {
            let s = 0;
            for (let c = 0; c < C; c++) s += a[r * C + c]! * w[(e * P + p) * C + c]!;
            out[r * P + p] = s;
          }
        }
        return out;
      },
      tol: { forward: 1e-6, backward: 2e-4 },
    }));

  test("weighted combine + residual", () =>
    checkOp({
      inputs: [
        { data: randn(N * K * C, 7), shape: [N * K, C] },
        { data: randn(N * K, 8), shape: [N, K] },
        { data: randn(N * C, 9), shape: [N, C] },
      ],
      gpu: (y, w, res) => moeCombine(y, w, plan(), res),
      ref: (y: Float32Array, w: Float32Array, res: Float32Array) =>
        Float32Array.from({ length: N * C }, (_, i) => {
          const t = Math.floor(i / C);
          let s = res[i]!;
          for (let j = 0; j < K; j++) s += w[t * K + j]! * y[pl.slotRow[t * K + j]! * C + (i % C)]!;
          return s;
        }),
      tol: { forward: 1e-6, backward: 2e-4 },
    }));
});

describe("Qwen2-MoE's gated shared expert: res + σ(g) ⊙ y", () => {
  // gate logits up to ±12: both sides of σ's exp(−|x|) form, and saturation
  const N = 11,
    C = 6;
  const y = randn(N * C, 21),
    res = randn(N * C, 22);
  const g = randn(N, 23).map((x, i) => (i === 0 ? 12 : i === 1 ? -12 : 2 * x));
  test("forward and backward against the CPU reference", () =>
    checkOp({
      inputs: [
        { data: y, shape: [N, C] },
        { data: g, shape: [N, 1] },
        { data: res, shape: [N, C] },
      ],
      gpu: (y, g, r) => sharedGate(y, g, r),
      ref: (y, g, r) => sharedGateRef(y, g, N, C, r),
      refBackward: (d, y, g) => {
        const { dy, dg } = sharedGateBackwardRef(d, y, g, N, C);
        return [dy, dg, d];
      },
      tol: { forward: 1e-6, backward: 1e-6 },
    }));
  test("backward against finite differences of the reference, no residual", () =>
    checkOp({
      inputs: [
        { data: y, shape: [N, C] },
        { data: g.map((x) => x / 4), shape: [N, 1] },
      ],
      gpu: (y, g) => sharedGate(y, g),
      ref: (y, g) => sharedGateRef(y, g, N, C),
      tol: { forward: 1e-6, backward: 1e-4 },
    }));
});

describe("the routed layer, composed, against moeRoutedRef", () => {
  // seeds whose top-k choices are ≥ 0.06 apart in router logits: a finite-difference step (1e-3) that
  // switched an expert would differentiate across the jump (seed 11 for the second case has a 4e-4 gap)
  for (const [N, C, E, I, K, o, seed] of [
    [7, 6, 5, 3, 2, { norm: true, scale: 1 }, 11],
    [11, 4, 3, 5, 1, { norm: false, scale: 1.5 }, 21],
  ] as [number, number, number, number, number, TopkOpts, number][])
    test(`N ${N}, C ${C}, E ${E}, I ${I}, top-${K} ${JSON.stringify(o)}`, () =>
      checkOp({
        inputs: [
          { data: randn(N * C, seed), shape: [N, C] },
          { data: randn(E * C, 12), shape: [E, C] },
          { data: randn(E * I * C, 13), shape: [E, I, C] },
          { data: randn(E * I * C, 14), shape: [E, I, C] },
          { data: randn(E * C * I, 15), shape: [E, C, I] },
        ],
        gpu: (x, router, g, u, d) => {
          const probs = routerSoftmax(matmul(x, router, { transB: true }));
          const { weights, experts } = moeTopk(probs, K, o);
          const plan = moePlan(experts, E);
          const xs = moeGather(x, plan);
          return moeCombine(
            groupedMatmul(swiglu(groupedMatmul(xs, g, plan), groupedMatmul(xs, u, plan)), d, plan),
            weights,
            plan,
          );
        },
        ref: (x, router, g, u, d) => moeRoutedRef(x, router, g, u, d, N, C, E, I, K, o),
        // f32 against f64 finite differences with h 1e-3 (the curvature term is O(h²) ≈ 1e-6)
        tol: { forward: 1e-5, backward: 1e-3 },
      }));
});

test("stackExperts: E weights as one (E, ...) tensor, gradients split back", () =>
  checkOp({
    inputs: [0, 1, 2].map((e) => ({ data: randn(4 * 3, 20 + e), shape: [4, 3] })),
    gpu: (...ws) => stackExperts(ws),
    ref: (...ws: Float32Array[]) => Float32Array.from(ws.flatMap((w) => [...w])),
    tol: { forward: 0, backward: 2e-4 },
  }));
