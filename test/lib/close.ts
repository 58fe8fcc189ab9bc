// expectAllClose: element-wise |actual - expected| <= atol + rtol·|expected|, reporting the first
// mismatches and the largest difference (llm.c's check_tensor), and failing the test.
import { expect } from "bun:test";

export interface CloseOpts {
  atol?: number;
  rtol?: number;
  label?: string;
}

export function expectAllClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  { atol = 0, rtol = 1e-5, label = "" }: CloseOpts = {},
): void {
  expect(actual.length).toBe(expected.length);
  const bad: string[] = [];
  let maxDiff = 0,
    maxAt = -1,
    nBad = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!,
      e = expected[i]!;
    const d = Math.abs(a - e);
    if (!(d <= atol + rtol * Math.abs(e))) {
      nBad++;
      if (bad.length < 5) bad.push(`  [${i}] got ${a} want ${e} (diff ${d.toExponential(2)})`);
    }
    if (!(d <= maxDiff)) (maxDiff = d), (maxAt = i);
  }
  if (nBad > 0) {
    throw new Error(
      `${label}: ${nBad}/${expected.length} values off (atol ${atol}, rtol ${rtol}); max diff ${maxDiff} at [${maxAt}]\n${bad.join("\n")}`,
    );
  }
}

/** Normwise relative error max|a - e| / max|e| — the figure the "relative error" bound is about. */
export function relError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let num = 0,
    den = 0;
  for (let i = 0; i < expected.length; i++) {
    num = Math.max(num, Math.abs(actual[i]! - expected[i]!));
    den = Math.max(den, Math.abs(expected[i]!));
  }
  return den === 0 ? num : num / den;
}

/** Deterministic uniform(-1, 1) values (mulberry32), so failures reproduce. */
export function randn(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  }
  return out;
}

/** Central finite differences of a scalar function of x, in f64. */
export function finiteDiff(f: (x: Float64Array) => number, x: ArrayLike<number>, h = 1e-5): Float64Array {
  const xs = Float64Array.from(x);
  const g = new Float64Array(xs.length);
  for (let i = 0; i < xs.length; i++) {
    const v = xs[i]!;
    xs[i] = v + h;
    const fp = f(xs);
    xs[i] = v - h;
    const fm = f(xs);
    xs[i] = v;
    g[i] = (fp - fm) / (2 * h);
  }
  return g;
}
