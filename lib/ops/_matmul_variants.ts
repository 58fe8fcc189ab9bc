// The matmul kernel variants and how one is chosen per adapter: a short autotune (correctness first,
// then time) whose pick is cached on disk per adapter in .cache/bunlm/matmul-autotune.json.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gpu, pipeline, dispatch, type Binding, type Defines } from "../gpu/index.ts";

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
  s: Pick<MatmulShape, "transA" | "transB" | "accumulate" | "N" | "strideB">,
) {
  const defines: Defines = {
    ...v.defines,
    TRANS_A: s.transA,
    TRANS_B: s.transB,
    ACCUMULATE: s.accumulate,
    F16_INPUTS: precision === "f16",
  };
  // vec4 loads of B need every row of B (and every batch item) to start on a 16-byte boundary
  if (v.kernel === "matmul_subgroup") defines.VEC_B = !s.transB && s.N % 4 === 0 && s.strideB % 4 === 0;
  return pipeline(v.kernel, defines);
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

export function dispatchVariant(v: MatmulVariant, c: Binding, a: Binding, b: Binding, s: MatmulShape): void {
  dispatch(variantPipeline(v, s), [a, b, c], [s.M, s.N, s.K, s.strideA, s.strideB, s.strideC], variantGrid(v, s));
}

/** A few rows (a decoding step): one thread per output column instead of tiles of rows. */
export const SKINNY_MAX_M = 8;

export function dispatchSkinny(c: Binding, a: Binding, b: Binding, s: MatmulShape): void {
  const p = pipeline("matmul_skinny", {
    MAXM: SKINNY_MAX_M,
    TRANS_A: s.transA,
    TRANS_B: s.transB,
    ACCUMULATE: s.accumulate,
    F16_INPUTS: precision === "f16",
  });
  dispatch(p, [a, b, c], [s.M, s.N, s.K, s.strideA, s.strideB, s.strideC], [Math.ceil(s.N / 64), 1, s.batch]);
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
