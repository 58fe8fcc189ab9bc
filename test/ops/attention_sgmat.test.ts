// Training attention on subgroup matrices (kernels/attention_*_sgmat.wgsl): through the emulation,
// which lavapipe runs, forward and all three gradients against the CPU reference on f16-rounded
// inputs — GQA, latent attention's value width, document masks, sliding windows, odd lengths,
// another matrix shape and subgroup size, the forward's lazy rescaling — and f16-precision attention
// takes these kernels when BUNLM_SUBGROUP_MATRIX says so. The native expansion compiles and creates
// its pipelines on Dawn's null adapter (the pattern of test/gpu/null_adapter.test.ts; the window is
// a uniform, so the same pipelines serve every window). The f32 kernels: attention.test.ts.
import { afterEach, beforeAll, describe, expect, test } from "bun:test";
import { create, globals } from "webgpu";
import { gpu, initGpu } from "../../lib/gpu/index.ts";
import { kernelCode } from "../../lib/gpu/pipelines.ts";
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
  type AttnLaunch,
} from "../../lib/ops/attention.ts";
import { mul, sumRows, withMatmulPrecision } from "../../lib/ops/index.ts";
import { resolveSubgroupMatrix, type SgmatTarget } from "../../lib/ops/_matmul_variants.ts";
import { reshape } from "../../lib/ops/shape.ts";
import { randn, relError } from "../lib/close.ts";

const f16 = Math.f16round;
// The kernels round q, k, v and dO to f16 as the reference's inputs are, multiply exactly in f32 and
// sum in f32; beyond that they round two intermediates to f16, the probabilities P (forward, dV)
// and dS (dQ, dK): relative error 2^-11 ≈ 4.9e-4 on each term of a sum. Normwise that stays within a
// few units of 2^-11 (measured: 1.3e-4 to 8.2e-4, the most in dQ, where dS sums to zero along a row
// and its rounding survives the cancellation). Bound: 4e-3, 8 units. A wrong mask, head, tile edge
// or rescaling moves results by O(1).
const REL = 4e-3;

let emulated: SgmatTarget;
beforeAll(async () => {
  await initGpu();
  emulated = resolveSubgroupMatrix("emulate", gpu())!;
});

const savedEnv = process.env.BUNLM_SUBGROUP_MATRIX;
afterEach(() => {
  if (savedEnv === undefined) delete process.env.BUNLM_SUBGROUP_MATRIX;
  else process.env.BUNLM_SUBGROUP_MATRIX = savedEnv;
});

// positions 0..T-1 per batch row, restarting at the given document starts
function positions(B: number, T: number, starts: number[] = []): Int32Array {
  const p = new Int32Array(B * T);
  for (let b = 0; b < B; b++)
    for (let t = 0; t < T; t++) p[b * T + t] = t === 0 || starts.includes(t) ? 0 : p[b * T + t - 1]! + 1;
  return p;
}

interface Inputs {
  Q: Float32Array;
  K: Float32Array;
  V: Float32Array;
  dO: Float32Array;
  pos: Int32Array;
  d: AttnDims;
}

function inputs(
  B: number,
  T: number,
  H: number,
  KV: number,
  D: number,
  DV: number,
  starts: number[],
  seed: number,
  window = 0,
) {
  const d: AttnDims = { B, T, Tk: T, H, KV, D, DV, qOffset: 0, scale: 1 / Math.sqrt(D), window };
  return {
    Q: randn(B * T * H * D, seed),
    K: randn(B * T * KV * D, seed + 1),
    V: randn(B * T * KV * DV, seed + 2),
    dO: randn(B * T * H * DV, seed + 3),
    pos: positions(B, T, starts),
    d,
  };
}

/** o, dq, dk, dv through attention() and backward() in f16 precision, with BUNLM_SUBGROUP_MATRIX = mode. */
function viaAttention(mode: string, x: Inputs): Promise<Float32Array[]> {
  process.env.BUNLM_SUBGROUP_MATRIX = mode;
  const { B, T, H, KV, D } = x.d;
  const DV = x.d.DV!;
  return withMatmulPrecision("f16", () =>
    scopeAsync(async () => {
      const q = Tensor.from(x.Q, [B, T, H, D]).param(),
        k = Tensor.from(x.K, [B, T, KV, D]).param(),
        v = Tensor.from(x.V, [B, T, KV, DV]).param();
      const out = attention(q, k, v, Tensor.from(x.pos, [B * T], "i32"), { scale: x.d.scale, window: x.d.window });
      backward(sumRows(mul(reshape(out, [B * T, H * DV]), Tensor.from(x.dO, [B * T, H * DV]))));
      return [await out.toArray(), await q.grad!.toArray(), await k.grad!.toArray(), await v.grad!.toArray()];
    }),
  );
}

/** The same four through the kernels launched directly for target t (any shape or subgroup size). */
function viaLaunches(t: SgmatTarget, x: Inputs): Promise<Float32Array[]> {
  const { d } = x;
  const fwd = forwardLaunch(d, t, gpu().limits, 2),
    [dq, dkv] = backwardLaunches(d, t, gpu().limits);
  return scopeAsync(async () => {
    const from = (a: Float32Array | Int32Array) => Tensor.from(a, [a.length], a instanceof Int32Array ? "i32" : "f32");
    const [q, k, v, dout, p] = [from(x.Q), from(x.K), from(x.V), from(x.dO), from(x.pos)];
    const [o, stats, gq, gk, gv] = [x.dO.length, 2 * d.B * d.H * d.T, x.Q.length, x.K.length, x.V.length].map((n) =>
      Tensor.empty([n]),
    ) as Tensor[];
    dispatchAttention(fwd, [q.buffer, k.buffer, v.buffer, p.buffer, o!.buffer, stats!.buffer], d);
    dispatchAttention(
      dq!,
      [q.buffer, k.buffer, v.buffer, p.buffer, o!.buffer, dout.buffer, stats!.buffer, gq!.buffer],
      d,
    );
    dispatchAttention(
      dkv!,
      [q.buffer, k.buffer, v.buffer, p.buffer, dout.buffer, stats!.buffer, gk!.buffer, gv!.buffer],
      d,
    );
    return [await o!.toArray(), await gq!.toArray(), await gk!.toArray(), await gv!.toArray()];
  });
}

/** The reference's o, dq, dk, dv with every input passed through `round`. */
function reference(x: Inputs, round: (v: number) => number = f16): Float32Array[] {
  const [Q, K, V, dO] = [x.Q, x.K, x.V, x.dO].map((a) => a.map(round));
  const g = attentionBackwardRef(Q!, K!, V!, x.pos, dO!, x.d);
  return [attentionRef(Q!, K!, V!, x.pos, x.d).o, g.dq, g.dk, g.dv];
}

/** Normwise relative errors below `bound`, output by output (their index named when one is not). */
function expectClose(got: Float32Array[], want: Float32Array[], bound: number) {
  const errs = got.map((g, i) => [i, relError(g, want[i]!)] as const);
  expect(errs.filter(([, e]) => !(e < bound))).toEqual([]);
}

describe("emulated subgroup-matrix attention equals the reference on f16-rounded inputs", () => {
  test("lavapipe's emulation: the H200's first shape, 16×16×16, 32 lanes", () => {
    expect(emulated).toEqual({ path: "emulate", M: 16, N: 16, K: 16, subgroupSize: 32 });
  });

  test("GQA (2 kv heads of 2 query heads), document masks, odd length", async () => {
    const x = inputs(2, 45, 4, 2, 32, 32, [13, 30], 1);
    expectClose(await viaAttention("emulate", x), reference(x), REL);
  }, 120_000);

  test("latent attention's value width (keys 24, values 16), 3 query heads per kv head", async () => {
    const x = inputs(1, 37, 3, 1, 24, 16, [20], 5);
    expectClose(await viaAttention("emulate", x), reference(x), REL);
  }, 120_000);

  // Another of the H200's shapes (result 16×8: a swapped row and column anywhere puts values in the
  // wrong place), 64 lanes as on some AMD GPUs, values wider than keys
  test("the 16×8×16 shape on subgroups of 64, values wider than keys (12, 40)", async () => {
    const x = inputs(1, 41, 2, 1, 12, 40, [], 9);
    const t: SgmatTarget = { ...emulated, N: 8, subgroupSize: 64 };
    expectClose(await viaLaunches(t, x), reference(x), REL);
  }, 120_000);

  // Sliding windows (Mistral): shorter than the documents, between, and longer; on the GQA test's
  // shapes, so the same pipelines (the window is a uniform).
  test("sliding windows 1, 3 and 20 with document masks, GQA, odd length", async () => {
    for (const w of [1, 3, 20]) {
      const x = inputs(2, 45, 4, 2, 32, 32, [13, 30], 21, w);
      expectClose(await viaAttention("emulate", x), reference(x), REL);
    }
  }, 120_000);

  test("a window of 5 at latent attention's value width (keys 24, values 16)", async () => {
    const x = inputs(1, 37, 3, 1, 24, 16, [20], 25, 5);
    expectClose(await viaAttention("emulate", x), reference(x), REL);
  }, 120_000);

  test("a window of T or more equals no window, to the bit", async () => {
    const x = inputs(2, 45, 4, 2, 32, 32, [13], 29);
    const none = await viaAttention("emulate", x);
    expect(await viaAttention("emulate", { ...x, d: { ...x.d, window: 45 } })).toEqual(none);
    expect(await viaAttention("emulate", { ...x, d: { ...x.d, window: 4096 } })).toEqual(none);
  }, 120_000);

  test("a window of 7 on the 16×8×16 shape, subgroups of 64, values wider than keys", async () => {
    const x = inputs(1, 41, 2, 1, 12, 40, [], 33, 7);
    const t: SgmatTarget = { ...emulated, N: 8, subgroupSize: 64 };
    expectClose(await viaLaunches(t, x), reference(x), REL);
  }, 120_000);

  // Scores that rise by 1 per key (q·k = the key's position). The third document (keys 30..44) spans
  // two key tiles of 32: its rows' max rises from 31 to up to 44, past TAU = 8 for rows 40 on, so the
  // forward must rescale their output rows (against the stale max their probabilities would reach
  // e^13, past f16's range). dq is left out: the rising channel of k (up to 44) makes Σ_j |dS_ij| |k_j|
  // 45 times max |dq|, so dS's rounding alone may move dq by 45·2^-11 ≈ 2.2e-2 normwise (measured
  // 1.0e-2); dk and dv see the same probabilities, recomputed from lse.
  test("scores rising along the keys: the output is rescaled between key tiles", async () => {
    const x = inputs(2, 45, 4, 2, 32, 32, [13, 30], 13);
    const q = Float32Array.from(x.Q, (_, e) => (e % 32 === 0 ? 1 : 0));
    const k = Float32Array.from(x.K, (v, e) => (e % 32 === 0 ? Math.floor(e / 64) % 45 : v));
    const y = { ...x, Q: q, K: k, d: { ...x.d, scale: 1 } };
    expect(forwardLaunch(y.d, emulated, gpu().limits, 2).defines).toMatchObject({ BK: 32, SG: 4 });
    const [o, , dk, dv] = await viaAttention("emulate", y);
    const [ro, , rk, rv] = reference(y);
    expectClose([o!, dk!, dv!], [ro!, rk!, rv!], REL);
  }, 120_000);
});

describe("BUNLM_SUBGROUP_MATRIX picks the kernels of f16-precision attention", () => {
  // Query 1 sees keys 0 and 1 with q·k = 1 and 1 + 2^-12; k's second value rounds to 1 in f16. With
  // scale 2^14 the f32 scores differ by 4, so P = (0.018, 0.982) and o = 0.982 (v = 0, 1); on f16
  // inputs they tie and o = 0.5. The emulation rounds as tensor cores do; off keeps f32 kernels.
  function tie(): Inputs {
    const [B, T, H, KV, D] = [1, 2, 1, 1, 32];
    const Q = new Float32Array(B * T * H * D),
      K = new Float32Array(B * T * KV * D),
      V = new Float32Array(B * T * KV * D);
    Q[D] = 1;
    K[0] = 1;
    K[D] = 1 + 2 ** -12;
    V[D] = 1;
    const d: AttnDims = { B, T, Tk: T, H, KV, D, DV: D, qOffset: 0, scale: 2 ** 14 };
    return { Q, K, V, dO: randn(B * T * H * D, 17), pos: positions(B, T), d };
  }

  test("emulate: inputs rounded to f16, as tensor cores take them", async () => {
    const [o] = await viaAttention("emulate", tie());
    expect(o![32]).toBe(0.5);
  }, 120_000);

  test("off: f32 kernels, within 1e-5 of the f32 reference", async () => {
    const x = tie();
    const [o] = await viaAttention("off", x);
    expect(o![32]).toBeCloseTo(1 / (1 + Math.exp(-4)), 6);
    const y = inputs(2, 45, 4, 2, 32, 32, [13, 30], 1);
    expectClose(
      await viaAttention("off", y),
      reference(y, (v) => v),
      1e-5,
    );
  }, 120_000);
});

// ---- the native kernels on Dawn's null adapter: compiled and validated, never run ----

for (const [k, v] of Object.entries(globals)) if (!(k in globalThis)) (globalThis as any)[k] = v;
const instance = create(["backend=null", "enable-dawn-features=allow_unsafe_apis"]) as GPU;
// in Bun, a collected Dawn instance crashes the next GC (DESIGN.md)
(globalThis as any).__bunlmAttentionNullInstance = instance;

// The H200's f16 → f32 configs and limits (DESIGN.md; the null adapter lists no configs of its own)
const H200_CONFIGS = [
  { M: 16, N: 16, K: 16 },
  { M: 16, N: 8, K: 16 },
  { M: 16, N: 8, K: 8 },
];
const H200_LIMITS = {
  maxComputeInvocationsPerWorkgroup: 1024,
  maxComputeWorkgroupSizeX: 1024,
  maxComputeWorkgroupStorageSize: 49152,
};
// head dims: a common one, a large one, latent attention's (keys 128 + 64 RoPE, values 128), odd
// ones; the null device's 16 KiB holds the backward's tiles up to head dim 64
const DIMS = [
  [64, 64],
  [128, 128],
  [192, 128],
  [24, 16],
  [12, 40],
];
const NULL_DIMS = DIMS.filter(([D, DV]) => D! <= 64 && DV! <= 64);

describe("native subgroup-matrix attention on Dawn's null adapter", () => {
  let device: GPUDevice;
  let limits: Record<string, number>;

  beforeAll(async () => {
    const adapter = (await instance.requestAdapter())!;
    limits = {};
    for (const k in adapter.limits) {
      const v = (adapter.limits as any)[k];
      if (typeof v === "number") limits[k] = v;
    }
    device = await adapter.requestDevice({
      requiredFeatures: ["chromium-experimental-subgroup-matrix", "shader-f16", "subgroups"] as GPUFeatureName[],
      requiredLimits: limits,
    });
  });

  /** Compile errors of a launch's module, and the validation error of its pipeline (null when valid). */
  async function build(l: AttnLaunch): Promise<{ errors: string[]; pipeline: string | null }> {
    device.pushErrorScope("validation");
    const module = device.createShaderModule({ code: kernelCode(l.kernel, l.defines) });
    const info = await module.getCompilationInfo();
    device.createComputePipeline({ layout: "auto", compute: { module, entryPoint: "main" } });
    const e = await device.popErrorScope();
    return {
      errors: info.messages.filter((m) => m.type === "error").map((m) => `${m.lineNum}: ${m.message}`),
      pipeline: e ? e.message : null,
    };
  }

  const launches = (d: AttnDims, t: SgmatTarget, lim: Record<string, number>) => [
    forwardLaunch(d, t, lim, 2),
    ...backwardLaunches(d, t, lim),
  ];
  const dims = (D: number, DV: number): AttnDims => ({ B: 1, T: 64, Tk: 64, H: 4, KV: 2, D, DV, qOffset: 0, scale: 1 });

  test("is the adapter these checks count on: subgroups of 128, 256 invocations, 16 KiB, 8 storage buffers", () => {
    expect(limits.maxComputeInvocationsPerWorkgroup).toBe(256);
    expect(limits.maxComputeWorkgroupStorageSize).toBe(16384);
    expect(limits.maxStorageBuffersPerShaderStage).toBe(8);
  });

  for (const c of H200_CONFIGS)
    test(`${c.M}×${c.N}×${c.K}, subgroups of 128: every kernel compiles and creates its pipeline`, async () => {
      const t: SgmatTarget = { path: "native", ...c, subgroupSize: 128 };
      for (const [D, DV] of NULL_DIMS)
        for (const l of launches(dims(D!, DV!), t, limits)) {
          const r = await build(l);
          expect({ l: l.defines, ...r }).toEqual({ l: l.defines, errors: [], pipeline: null });
        }
    });

  // The H200's own launches (subgroups of 32, 48 KiB): they compile, and their pipelines fail only
  // on what the null device lacks (its subgroups of 128, its 16 KiB).
  const NULL_DEVICE_LIMIT =
    /multiple of the device maxSubgroupSize \(128\)|workgroup storage .* larger than the maximum/;
  for (const c of H200_CONFIGS)
    test(`${c.M}×${c.N}×${c.K}, subgroups of 32 (H200): every kernel compiles`, async () => {
      const t: SgmatTarget = { path: "native", ...c, subgroupSize: 32 };
      for (const [D, DV] of DIMS)
        for (const l of launches(dims(D!, DV!), t, H200_LIMITS)) {
          const r = await build(l);
          expect({ l: l.defines, errors: r.errors }).toEqual({ l: l.defines, errors: [] });
          if (r.pipeline !== null) expect(r.pipeline).toMatch(NULL_DEVICE_LIMIT);
        }
    });
});
