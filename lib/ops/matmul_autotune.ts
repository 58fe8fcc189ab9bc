// Autotune: check every matmul candidate against the CPU reference on an odd shape (a variant that
// is wrong on this adapter, e.g. one that assumes a subgroup layout the driver does not use, is
// dropped), time the rest on a square problem and two thin ones (shapes()), and cache per adapter
// the one with the best geometric mean.
import { acquireBuffer, releaseBuffer, writeBuffer, readBuffer, flush } from "../gpu/index.ts";
import { matmulCandidates, dispatchVariant, saveChoice, type MatmulVariant, plainShape } from "./_matmul_variants.ts";
import { matmulRef } from "./matmul.ts";

function rand(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1);
}

export interface AutotuneResult {
  size: number;
  /** the (M, K, N) timed, from shapes(size) */
  shapes: [number, number, number][];
  /** gflops: the geometric mean over the shapes; per_shape: each shape's */
  results: { variant: MatmulVariant; gflops: number | null; per_shape?: number[]; correct: boolean }[];
  chosen: MatmulVariant;
}

/**
 * What a model's matmuls look like, scaled to `size`: square, and rows × a thin width either side
 * (hidden-size inputs, narrow heads or vocabulary slices). A variant tuned on squares alone can be
 * several times slower on the thin ones, which are most of a small model's training.
 */
export function shapes(size: number): [number, number, number][] {
  const thin = Math.max(16, size >> 3);
  return [
    [size, size, size],
    [2 * size, thin, size >> 2],
    [2 * size, size >> 2, thin],
  ];
}

export async function autotuneMatmul(
  size = Number(process.env.BUNLM_AUTOTUNE_SIZE ?? 1024),
  reps = 3,
): Promise<AutotuneResult> {
  const [M, K, N] = [37, 29, 45];
  const A = rand(M * K, 1),
    B = rand(K * N, 2);
  const want = matmulRef(A, B, M, N, K);
  const a = acquireBuffer(size * size * 4),
    b = acquireBuffer(size * size * 4),
    c = acquireBuffer(size * size * 4);
  writeBuffer(a, rand(size * size, 3));
  writeBuffer(b, rand(size * size, 4));
  const results: AutotuneResult["results"] = [];
  try {
    for (const v of matmulCandidates()) {
      writeBuffer(a, A);
      writeBuffer(b, B);
      dispatchVariant(v, c, a, b, plainShape(M, N, K));
      const got = new Float32Array(await readBuffer(c, M * N * 4));
      let err = 0;
      for (let i = 0; i < want.length; i++) err = Math.max(err, Math.abs(got[i]! - want[i]!));
      if (!(err < 1e-4)) {
        results.push({ variant: v, gflops: null, correct: false });
        continue;
      }
      writeBuffer(a, rand(size * size, 3));
      writeBuffer(b, rand(size * size, 4));
      const perShape = [];
      for (const [m, k, n] of shapes(size)) {
        const s = plainShape(m, n, k);
        dispatchVariant(v, c, a, b, s); // compiles the pipeline, warms caches
        await flush();
        // best of `reps` single runs: on a shared 2-core machine the minimum is the stable figure
        let sec = Infinity;
        for (let r = 0; r < reps; r++) {
          const t0 = performance.now();
          dispatchVariant(v, c, a, b, s);
          await flush();
          sec = Math.min(sec, (performance.now() - t0) / 1000);
        }
        perShape.push((2 * m * n * k) / sec / 1e9);
      }
      // the geometric mean: a variant must do well on every shape, not only on the square one
      const gflops = Math.exp(perShape.reduce((x, g) => x + Math.log(g), 0) / perShape.length);
      results.push({ variant: v, gflops, per_shape: perShape, correct: true });
    }
  } finally {
    releaseBuffer(a);
    releaseBuffer(b);
    releaseBuffer(c);
  }
  const ok = results.filter((r) => r.correct).sort((x, y) => y.gflops! - x.gflops!);
  if (ok.length === 0) throw new Error("no matmul kernel variant computes correct results on this adapter");
  saveChoice(ok[0]!.variant);
  return { size, shapes: shapes(size), results, chosen: ok[0]!.variant };
}
