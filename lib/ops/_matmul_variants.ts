// The matmul kernel variants and how one is chosen per adapter: a short autotune (correctness first,
// then time) whose pick is cached on disk per adapter in .cache/bunlm/matmul-autotune.json; and the
// subgroup-matrix kernel (f16 operands, f32 accumulation) that f16-precision matmuls take where
// BUNLM_SUBGROUP_MATRIX and the adapter allow it.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { InputError } from "../base/errors.ts";
import { gpu, pipeline, dispatch, scratchBuffer, type Binding, type Defines, type Gpu } from "../gpu/index.ts";
import type { SubgroupMatrixConfig } from "../gpu/device.ts";
import type { HalfDType } from "../tensor/tensor.ts";

export interface MatmulVariant {
  kernel: "matmul" | "matmul_subgroup";
  defines: Defines; // tile sizes
}

export interface MatmulShape {
  M: number;
  N: number;
  K: number;
  batch: number;
  transA: boolean;
  transB: boolean;
  accumulate: boolean;
  strideA: number;
  strideB: number;
  strideC: number;
  /** stored row strides when the operands are blocks of bigger matrices (matmul.ts's windows) */
  lda?: number;
  ldb?: number;
  ldc?: number;
  /** where each block starts in its binding (elements) */
  offA?: number;
  offB?: number;
  offC?: number;
  /** start the accumulators from C: the later parts of a product split along K (not on sgmat) */
  cont?: boolean;
  /** B holds half-width weights (bf16 or f16 pairs), widened as loaded; its offsets count 16-bit elements */
  halfB?: HalfDType;
}

/** The kernels' HALF define (kernels/common/half_weights.wgsl) for a half-width B; none for f32, so
 * the f32 pipelines keep their defines. */
export function halfDefine(h: HalfDType | undefined): Defines {
  return h ? { HALF: h === "bf16" ? 1 : 2 } : {};
}

/** The kernels' Params: sizes, batch strides, row strides (the contiguous ones by default), offsets. */
export function matmulParams(s: MatmulShape): number[] {
  return [
    s.M,
    s.N,
    s.K,
    s.strideA,
    s.strideB,
    s.strideC,
    s.lda ?? (s.transA ? s.M : s.K),
    s.ldb ?? (s.transB ? s.K : s.N),
    s.ldc ?? s.N,
    s.offA ?? 0,
    s.offB ?? 0,
    s.offC ?? 0,
  ];
}

/**
 * What a tiled or skinny matmul does around its product (kernels/matmul.wgsl's fusions): `residual`
 * (C's layout) is added as C is stored; `swigluUp` (A's layout) makes op(A) = silu(A) ⊙ up as A is
 * loaded (the tiled kernels only). Neither goes with accumulate.
 */
export interface MatmulFusion {
  residual?: Binding;
  swigluUp?: Binding;
}

/** One plain product (M, K)·(K, N), no batch, no transposes: autotune's and the benchmarks' problem. */
export function plainShape(M: number, N: number, K: number): MatmulShape {
  return { M, N, K, batch: 1, transA: false, transB: false, accumulate: false, strideA: 0, strideB: 0, strideC: 0 };
}

/** Candidates for this adapter, most promising first. */
export function matmulCandidates(): MatmulVariant[] {
  const g = gpu();
  const maxInv = g.limits.maxComputeInvocationsPerWorkgroup ?? 256;
  const wgMem = g.limits.maxComputeWorkgroupStorageSize ?? 16384;
  const out: MatmulVariant[] = [];
  if (g.subgroupMinSize === 8 && g.subgroupMaxSize === 8) {
    for (const [SUB_M, SUB_N] of [
      [4, 2],
      [2, 4],
      [8, 1],
      [1, 8],
    ] as const)
      for (const TN of [8, 16, 4]) out.push({ kernel: "matmul_subgroup", defines: { TN, SUB_M, SUB_N } });
  }
  const tiles: [number, number, number, number, number][] = [
    // BM, BN, BK, TM, TN
    [128, 128, 8, 8, 8],
    [64, 64, 16, 4, 4],
    [64, 64, 8, 8, 4],
    [32, 32, 16, 4, 4],
    [64, 64, 16, 8, 8],
  ];
  for (const [BM, BN, BK, TM, TN] of tiles) {
    if ((BM / TM) * (BN / TN) > maxInv) continue;
    if ((BM + BN) * BK * 4 > wgMem) continue;
    out.push({ kernel: "matmul", defines: { BM, BN, BK, TM, TN } });
  }
  return out;
}

/**
 * Matmul input precision: "f32", or "f16" (operands rounded to f16, f32 accumulation — mixed
 * precision; on adapters with subgroup matrices the tensor-core kernel's arithmetic, elsewhere its
 * exact emulation). Scoped like noGrad: every matmul fn launches (also across its awaits) uses p,
 * and the precision before is back when fn returns or throws.
 */
export type MatmulPrecision = "f32" | "f16";
let precision: MatmulPrecision = "f32";
export function withMatmulPrecision<T>(p: MatmulPrecision, fn: () => T): T {
  const was = precision;
  precision = p;
  let r: T;
  try {
    r = fn();
  } catch (e) {
    precision = was;
    throw e;
  }
  if (r instanceof Promise) return r.finally(() => (precision = was)) as T;
  precision = was;
  return r;
}
export function matmulPrecision(): MatmulPrecision {
  return precision;
}

export function variantPipeline(
  v: MatmulVariant,
  s: Pick<MatmulShape, "transA" | "transB" | "accumulate" | "N" | "strideB" | "ldb" | "offB" | "cont" | "halfB">,
  f: MatmulFusion = {},
) {
  const defines: Defines = {
    ...v.defines,
    TRANS_A: s.transA,
    TRANS_B: s.transB,
    ACCUMULATE: s.accumulate,
    SWIGLU_A: f.swigluUp !== undefined,
    RESIDUAL: f.residual !== undefined,
    F16_INPUTS: precision === "f16",
  };
  // vec4 loads of B need every row of B (and every batch item) to start on a 16-byte boundary
  if (v.kernel === "matmul_subgroup")
    defines.VEC_B =
      !s.transB && s.N % 4 === 0 && s.strideB % 4 === 0 && (s.ldb ?? s.N) % 4 === 0 && (s.offB ?? 0) % 4 === 0;
  if (s.cont) defines.CONTINUE = true;
  return pipeline(v.kernel, { ...defines, ...halfDefine(s.halfB) });
}

export function variantGrid(v: MatmulVariant, s: MatmulShape): [number, number, number] {
  const d = v.defines as Record<string, number>;
  if (v.kernel === "matmul_subgroup") {
    const cols = d.SUB_N! * 8 * d.TN!;
    const rows = d.SUB_M! * 8;
    return [Math.ceil(s.N / cols), Math.ceil(s.M / rows), s.batch];
  }
  return [Math.ceil(s.N / d.BN!), Math.ceil(s.M / d.BM!), s.batch];
}

function checkFusion(s: MatmulShape, f: MatmulFusion): void {
  if (s.accumulate && (f.residual || f.swigluUp)) throw new Error("matmul: accumulate does not go with a fusion");
}

export function dispatchVariant(
  v: MatmulVariant,
  c: Binding,
  a: Binding,
  b: Binding,
  s: MatmulShape,
  f: MatmulFusion = {},
): void {
  checkFusion(s, f);
  dispatch(
    variantPipeline(v, s, f),
    [a, b, f.swigluUp ?? scratchBuffer(), f.residual ?? scratchBuffer(), c],
    matmulParams(s),
    variantGrid(v, s),
  );
}

/** A few rows (a decoding step): one thread per output column instead of tiles of rows. */
export const SKINNY_MAX_M = 8;

export function dispatchSkinny(c: Binding, a: Binding, b: Binding, s: MatmulShape, residual?: Binding): void {
  checkFusion(s, { residual });
  const p = pipeline("matmul_skinny", {
    MAXM: SKINNY_MAX_M,
    TRANS_A: s.transA,
    TRANS_B: s.transB,
    ACCUMULATE: s.accumulate,
    RESIDUAL: residual !== undefined,
    F16_INPUTS: precision === "f16",
    ...(s.cont ? { CONTINUE: true } : {}),
    ...halfDefine(s.halfB),
  });
  dispatch(p, [a, b, residual ?? scratchBuffer(), c], matmulParams(s), [Math.ceil(s.N / 64), 1, s.batch]);
}

// ---- the per-adapter choice, cached on disk ----

const CACHE_DIR = process.env.BUNLM_CACHE_DIR ?? join(import.meta.dir, "..", "..", ".cache", "bunlm");
const CACHE_FILE = join(CACHE_DIR, "matmul-autotune.json");
let chosen: MatmulVariant | null = null;

function readCache(): Record<string, MatmulVariant> {
  try {
    return JSON.parse(readFileSync(CACHE_FILE, "utf8"));
  } catch {
    return {};
  }
}

export function saveChoice(v: MatmulVariant): void {
  chosen = v;
  const all = readCache();
  all[gpu().info.key] = v;
  try {
    mkdirSync(CACHE_DIR, { recursive: true });
    const tmp = `${CACHE_FILE}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(all, null, 2));
    renameSync(tmp, CACHE_FILE);
  } catch {
    // a read-only checkout still works, it just tunes again next time
  }
}

/** The autotuned pick for this adapter, if one is cached. */
export function cachedMatmulChoice(): MatmulVariant | null {
  return readCache()[gpu().info.key] ?? null;
}

/** The variant to use: BUNLM_MATMUL=<kernel>:<K=V,...> forces one; else the autotuned pick; else a default. */
export function matmulVariant(): MatmulVariant {
  if (chosen) return chosen;
  const forced = process.env.BUNLM_MATMUL;
  if (forced) {
    const [kernel, rest = ""] = forced.split(":");
    const defines: Defines = {};
    for (const kv of rest.split(",").filter(Boolean)) {
      const [k, v] = kv.split("=");
      defines[k!] = Number(v);
    }
    if (kernel !== "matmul" && kernel !== "matmul_subgroup")
      throw new Error(`BUNLM_MATMUL=${forced}: unknown kernel ${kernel}`);
    return (chosen = { kernel, defines });
  }
  const cached = readCache()[gpu().info.key];
  if (cached) return (chosen = cached);
  return (chosen = matmulCandidates()[0]!);
}

// ---- subgroup matrices: f16 operands, f32 accumulation (kernels/matmul_sgmat.wgsl) ----

/** Which kernel f16-precision matmuls take: tensor cores, their exact emulation, or the tiled kernels. */
export type SubgroupMatrixPath = "native" | "emulate" | "off";

/** Where the subgroup-matrix kernel runs, and on which matrix shapes (left M×K, right K×N, result M×N). */
export interface SgmatTarget {
  path: "native" | "emulate";
  M: number;
  N: number;
  K: number;
  /** invocations per subgroup: natively the adapter's (fixed) size; emulated, any */
  subgroupSize: number;
}

/** A tiling: SUB_M × SUB_N subgroups per workgroup, TM × TN result matrices each, KT matrix steps of K per stage. */
export interface SgmatVariant {
  SUB_M: number;
  SUB_N: number;
  TM: number;
  TN: number;
  KT: number;
}

/** The emulation's shapes when the adapter has no config to copy: the H200's first, 16×16×16, 32 lanes. */
export const EMULATED_SHAPE = { M: 16, N: 16, K: 16, subgroupSize: 32 } as const;

/** The adapter's f16 → f32 configs, most work per instruction first (ties keep the driver's order). */
export function f16Configs(configs: readonly SubgroupMatrixConfig[]): SubgroupMatrixConfig[] {
  return configs
    .filter((c) => c.componentType === "f16" && c.resultComponentType === "f32")
    .map((c, i) => ({ c, i }))
    .sort((x, y) => y.c.M * y.c.N * y.c.K - x.c.M * x.c.N * x.c.K || x.i - y.i)
    .map((x) => x.c);
}

type SgmatAdapter = Pick<Gpu, "features" | "subgroupMinSize" | "subgroupMaxSize" | "subgroupMatrixConfigs" | "info">;

/** Why this adapter cannot run the native kernel, or null when it can. */
export function nativeUnavailable(g: SgmatAdapter): string | null {
  if (!g.features.has("chromium-experimental-subgroup-matrix") || g.subgroupMatrixConfigs.length === 0)
    return "has no subgroup matrices";
  if (!g.features.has("shader-f16")) return "lacks shader-f16";
  if (f16Configs(g.subgroupMatrixConfigs).length === 0) return "has no subgroup-matrix config from f16 to f32";
  // each subgroup's share of a tile is fixed when the kernel compiles
  if (g.subgroupMinSize !== g.subgroupMaxSize)
    return `has subgroups of ${g.subgroupMinSize} to ${g.subgroupMaxSize} invocations, and the kernel needs one fixed size`;
  return null;
}

/**
 * The subgroup-matrix target that BUNLM_SUBGROUP_MATRIX (`env`) and the adapter give, or null for the
 * tiled kernels. Unset: native where the adapter can, else off. native on an adapter that cannot, or
 * emulate without shader-f16, is an InputError rather than a silent fallback.
 */
export function resolveSubgroupMatrix(env: string | undefined, g: SgmatAdapter): SgmatTarget | null {
  const v = (env ?? "").trim().toLowerCase();
  const name = g.info.description || g.info.device || "this adapter";
  if (v === "off") return null;
  if (v === "" || v === "native") {
    const why = nativeUnavailable(g);
    if (why === null) {
      const c = f16Configs(g.subgroupMatrixConfigs)[0]!;
      return { path: "native", M: c.M, N: c.N, K: c.K, subgroupSize: g.subgroupMaxSize };
    }
    if (v === "") return null;
    throw new InputError(`BUNLM_SUBGROUP_MATRIX=native: the adapter "${name}" ${why}; use emulate or off`);
  }
  if (v === "emulate") {
    if (!g.features.has("shader-f16"))
      throw new InputError(`BUNLM_SUBGROUP_MATRIX=emulate: the adapter "${name}" lacks shader-f16; use off`);
    const c = f16Configs(g.subgroupMatrixConfigs)[0] ?? EMULATED_SHAPE;
    return { path: "emulate", M: c.M, N: c.N, K: c.K, subgroupSize: EMULATED_SHAPE.subgroupSize };
  }
  throw new InputError(`BUNLM_SUBGROUP_MATRIX=${env}: expected native, emulate or off`);
}

let resolved: { env: string | undefined; target: SgmatTarget | null } | null = null;

/** This process's subgroup-matrix target (re-read when BUNLM_SUBGROUP_MATRIX changes). */
export function sgmatTarget(): SgmatTarget | null {
  const env = process.env.BUNLM_SUBGROUP_MATRIX;
  if (!resolved || resolved.env !== env) resolved = { env, target: resolveSubgroupMatrix(env, gpu()) };
  return resolved.target;
}

/** The path f16-precision matmuls take on this adapter: what a run reports beside --precision mixed. */
export function subgroupMatrixPath(): SubgroupMatrixPath {
  return sgmatTarget()?.path ?? "off";
}

// Tilings, most promising first. On tensor cores: 4×4 result matrices per subgroup load 8 operands per
// 16 multiply-accumulates; the 2×1 and 1×2 ones fit adapters whose subgroups are 128 wide (Dawn's null
// backend) in 256 invocations. Emulated (lavapipe): one result matrix per subgroup, the fastest to
// compile (~1 s; 2×2 takes 5-8 s, unrolled) and to run on a small model's shapes (64×32×96: 2.2 ms
// against 3.9 for 4×4). KT > 1 halves the barriers per K but compiles for 10-17 s on lavapipe.
const SGMAT_TILINGS: Record<SgmatTarget["path"], SgmatVariant[]> = {
  native: [
    { SUB_M: 2, SUB_N: 2, TM: 4, TN: 4, KT: 1 },
    { SUB_M: 2, SUB_N: 2, TM: 2, TN: 2, KT: 1 },
    { SUB_M: 2, SUB_N: 1, TM: 4, TN: 4, KT: 1 },
    { SUB_M: 1, SUB_N: 2, TM: 4, TN: 4, KT: 1 },
    { SUB_M: 2, SUB_N: 1, TM: 2, TN: 2, KT: 1 },
  ],
  emulate: [
    { SUB_M: 2, SUB_N: 2, TM: 1, TN: 1, KT: 1 },
    { SUB_M: 2, SUB_N: 2, TM: 4, TN: 4, KT: 1 },
  ],
};

/** Workgroup memory a tiling takes: f16 A and B tiles, one f32 result matrix per subgroup, the emulation's operands. */
export function sgmatWorkgroupBytes(t: SgmatTarget, v: SgmatVariant): number {
  const subgroups = v.SUB_M * v.SUB_N;
  const [bm, bn, bk] = [v.SUB_M * v.TM * t.M, v.SUB_N * v.TN * t.N, v.KT * t.K];
  const emulated = t.path === "emulate" ? 2 * subgroups * (t.M * t.K + t.K * t.N) : 0;
  return 2 * (bm * bk + bk * bn) + 4 * subgroups * t.M * t.N + emulated;
}

/** The tilings for a target that fit an adapter's limits, most promising first. */
export function sgmatVariants(t: SgmatTarget, limits: Record<string, number>): SgmatVariant[] {
  const maxInv = Math.min(limits.maxComputeInvocationsPerWorkgroup ?? 256, limits.maxComputeWorkgroupSizeX ?? 256);
  const wgMem = limits.maxComputeWorkgroupStorageSize ?? 16384;
  return SGMAT_TILINGS[t.path].filter(
    (v) => v.SUB_M * v.SUB_N * t.subgroupSize <= maxInv && sgmatWorkgroupBytes(t, v) <= wgMem,
  );
}

/** The tiling this process uses for a target: the first that fits (unmeasured on tensor cores so far). */
export function sgmatVariant(t: SgmatTarget): SgmatVariant {
  const v = sgmatVariants(t, gpu().limits)[0];
  if (!v)
    throw new Error(
      `no subgroup-matrix tiling fits this adapter's limits (${t.M}×${t.N}×${t.K}, subgroups of ${t.subgroupSize})`,
    );
  return v;
}

/** The defines that make kernels/matmul_sgmat.wgsl one pipeline. */
export function sgmatDefines(
  t: SgmatTarget,
  v: SgmatVariant,
  s: Pick<MatmulShape, "transA" | "transB" | "accumulate" | "halfB">,
): Defines {
  return {
    SUBGROUP_MATRIX: t.path,
    SGM_M: t.M,
    SGM_N: t.N,
    SGM_K: t.K,
    SGM_SUBGROUP_SIZE: t.subgroupSize,
    ...v,
    TRANS_A: s.transA,
    TRANS_B: s.transB,
    ACCUMULATE: s.accumulate,
    ...halfDefine(s.halfB),
  };
}

export function sgmatGrid(t: SgmatTarget, v: SgmatVariant, s: MatmulShape): [number, number, number] {
  return [Math.ceil(s.N / (v.SUB_N * v.TN * t.N)), Math.ceil(s.M / (v.SUB_M * v.TM * t.M)), s.batch];
}

/** C = op(A)·op(B) (or +=) with f16 operands and f32 accumulation, on subgroup matrices. */
export function dispatchSgmat(
  t: SgmatTarget,
  v: SgmatVariant,
  c: Binding,
  a: Binding,
  b: Binding,
  s: MatmulShape,
): void {
  if (s.cont) throw new Error("matmul_sgmat: no CONTINUE; a split along K accumulates");
  dispatch(pipeline("matmul_sgmat", sgmatDefines(t, v, s)), [a, b, c], matmulParams(s), sgmatGrid(t, v, s));
}
