// Metric curves as an SVG picture: one line per run, overlaid on shared axes with labelled ticks, a
// legend named after each run, and optional exponential smoothing (the raw curve stays, faint, behind
// the smoothed one). Validation points ("eval" events) are circles. The picture carries PLOT_MARK so
// that plot recognises its own earlier output (mark.ts).
import { InputError } from "../base/errors.ts";
import { PLOT_MARK } from "./mark.ts";
import { curve, niceTicks, type Series } from "./scale.ts";

/** The picture's size in pixels (the PNG's too). */
export const WIDTH = 800,
  HEIGHT = 480;

// matplotlib's tab10, in the order the terminal chart's colours follow (ascii.ts)
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"];

/**
 * Named families first: resvg maps the generic "sans-serif" to Arial, and where Arial is missing it
 * falls back to whatever font it finds first (DejaVu Serif on Debian); DejaVu Sans is Debian's
 * fonts-dejavu-core, Liberation Sans fonts-liberation.
 */
export const FONTS = "DejaVu Sans, Liberation Sans, Arial, Helvetica, sans-serif";

export interface PlotOptions {
  metric: string;
  /** exponential smoothing factor in [0, 1); 0 draws the raw curve only */
  smooth: number;
  title: string;
}

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** Every point that is drawn, raw and validation, finite only. */
export function drawnPoints(series: Series[]): [number, number][] {
  return series.flatMap((s) => [...s.pts, ...s.evals]).filter(([, y]) => Number.isFinite(y));
}

export function renderSvg(series: Series[], o: PlotOptions): string {
  const W = WIDTH,
    H = HEIGHT,
    L = 70,
    R = 170,
    T = 40,
    B = 55;
  const all = drawnPoints(series);
  if (all.length === 0) throw new InputError(`no "${o.metric}" values in the metrics files`);
  const xs = all.map((p) => p[0]),
    ys = all.map((p) => p[1]);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  const pad = (y1 - y0) * 0.05 || 0.5;
  y0 -= pad;
  y1 += pad;
  const X = (x: number) => L + ((x - x0) / (x1 - x0 || 1)) * (W - L - R);
  const Y = (y: number) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  const e: string[] = [];
  e.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="${FONTS}" font-size="12">`,
  );
  e.push(PLOT_MARK);
  e.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  e.push(`<text x="${(L + W - R) / 2}" y="22" text-anchor="middle" font-size="15">${esc(o.title)}</text>`);
  for (const t of niceTicks(y0, y1)) {
    e.push(`<line x1="${L}" x2="${W - R}" y1="${Y(t)}" y2="${Y(t)}" stroke="#eee"/>`);
    e.push(`<text x="${L - 6}" y="${Y(t) + 4}" text-anchor="end">${t}</text>`);
  }
  for (const t of niceTicks(x0, x1, 6, true)) {
    if (t > x1) continue; // a single step: niceTicks widened the range to one more
    e.push(`<line x1="${X(t)}" x2="${X(t)}" y1="${T}" y2="${H - B}" stroke="#f3f3f3"/>`);
    e.push(`<text x="${X(t)}" y="${H - B + 16}" text-anchor="middle">${t}</text>`);
  }
  e.push(`<rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="none" stroke="#444"/>`);
  e.push(`<text x="${(L + W - R) / 2}" y="${H - 12}" text-anchor="middle">optimizer step</text>`);
  e.push(`<text transform="translate(18 ${(T + H - B) / 2}) rotate(-90)" text-anchor="middle">${esc(o.metric)}</text>`);
  const path = (p: [number, number][]) =>
    p.map(([x, y], k) => `${k ? "L" : "M"}${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join("");
  series.forEach((s, i) => {
    const c = COLORS[i % COLORS.length]!;
    if (o.smooth > 0 && s.pts.length > 1) {
      e.push(`<path d="${path(curve(s.pts, 0))}" fill="none" stroke="${c}" stroke-opacity="0.25" stroke-width="1"/>`);
      e.push(`<path d="${path(curve(s.pts, o.smooth))}" fill="none" stroke="${c}" stroke-width="2"/>`);
    } else e.push(`<path d="${path(curve(s.pts, 0))}" fill="none" stroke="${c}" stroke-width="2"/>`);
    for (const [x, y] of s.evals)
      if (Number.isFinite(y))
        e.push(`<circle cx="${X(x)}" cy="${Y(y)}" r="4" fill="white" stroke="${c}" stroke-width="2"/>`);
    const ly = T + 14 + i * 20;
    e.push(
      `<line x1="${W - R + 14}" x2="${W - R + 38}" y1="${ly - 4}" y2="${ly - 4}" stroke="${c}" stroke-width="2"/>`,
    );
    e.push(`<text x="${W - R + 44}" y="${ly}">${esc(s.label)}</text>`);
  });
  if (series.some((s) => s.evals.length)) {
    const ly = T + 14 + series.length * 20;
    e.push(
      `<circle cx="${W - R + 26}" cy="${ly - 4}" r="4" fill="white" stroke="#444" stroke-width="2"/><text x="${W - R + 44}" y="${ly}">validation</text>`,
    );
  }
  e.push("</svg>");
  return `${e.join("\n")}\n`;
}
