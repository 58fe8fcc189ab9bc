// What every picture of a run shares, whatever draws it (SVG, PNG, the terminal): the series a
// metrics file gives, the curve drawn for it (non-finite points dropped, then optionally smoothed
// with TensorBoard's exponential moving average) and the "nice" tick values of an axis (steps of
// 1, 2, 2.5 or 5 times a power of ten, as matplotlib's MaxNLocator picks them).
import { InputError } from "../base/errors.ts";

/** One run: its label, the metric at each optimizer step, and validation losses ("eval" events). */
export interface Series {
  label: string;
  /** [step, value] */
  pts: [number, number][];
  /** [step, val_loss] */
  evals: [number, number][];
}

/** Exponential moving average with factor `a` in [0, 1): s_0 = y_0, s_i = a s_(i-1) + (1 - a) y_i. */
export function ema(ys: number[], a: number): number[] {
  let s = ys[0] ?? 0;
  return ys.map((y, i) => (s = i === 0 ? y : a * s + (1 - a) * y));
}

/**
 * The points a curve is drawn through: the finite ones (a NaN would otherwise poison every smoothed
 * value after it), smoothed when `smooth` > 0.
 */
export function curve(pts: [number, number][], smooth: number): [number, number][] {
  const ok = pts.filter(([, y]) => Number.isFinite(y));
  if (!(smooth > 0)) return ok;
  const sm = ema(
    ok.map((p) => p[1]),
    smooth,
  );
  return ok.map((p, k) => [p[0], sm[k]!]);
}

/**
 * About `n` round values covering [lo, hi]. `integer` keeps the step at 1 or more (optimizer
 * steps: a tick at step 2.5 names no step).
 */
export function niceTicks(lo: number, hi: number, n = 6, integer = false): number[] {
  if (hi <= lo) hi = lo + 1;
  const raw = (hi - lo) / n,
    mag = 10 ** Math.floor(Math.log10(raw));
  let step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  if (integer) step = Math.max(1, Math.floor(step));
  const out: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + 1e-9 * step; t += step) out.push(+t.toPrecision(12));
  return out;
}

/** A value in a label: 5 significant digits at most, exponent form when very large or small. */
export function fmtValue(x: number): string {
  if (x === 0 || !Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  if (a >= 1e6 || a < 1e-4) return x.toExponential(2).replace(/\.?0+e/, "e");
  return String(Number(x.toPrecision(5)));
}

/** `--smooth`'s value: a number in [0, 1). */
export function smoothFactor(text: string): number {
  const a = Number(text);
  if (text.trim() === "" || !(a >= 0 && a < 1)) throw new InputError(`--smooth ${text}: expected a number in [0, 1)`);
  return a;
}
