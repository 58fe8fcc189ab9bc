// Metric curves as text, for a quick look in a terminal (over ssh, with no picture viewer): one
// character cell per (step range, value range), one glyph per run (the legend names it; a colour
// too on a terminal that has them), the y axis labelled with the maximum at the top, the minimum at
// the bottom and round values between, the x axis with the first and last step and round steps
// between. Several points in one column are averaged; a gap between columns is bridged by linear
// interpolation and a jump by a vertical run, so a curve reads as a line, as in asciichart.
import { InputError } from "../base/errors.ts";
import { curve, fmtValue, niceTicks, type Series } from "./scale.ts";

/** One glyph per run, told apart without colour; validation points are VAL_GLYPH. */
export const GLYPHS = ["•", "+", "x", "*", "#", "%", "@", "&"];
export const VAL_GLYPH = "o";
// ANSI colours in the order of the SVG's tab10 (blue, red, green, purple, orange, cyan, …)
const ANSI = ["34", "31", "32", "35", "33", "36", "90", "37"];

export interface AsciiOptions {
  /** columns of the whole chart, labels included */
  width: number;
  /** rows of the plot area */
  height: number;
  metric: string;
  smooth: number;
  title: string;
  /** ANSI colours (only for a terminal that shows them) */
  colour: boolean;
}

/** A chart size that fits a terminal of `columns` x `rows` with `legend` lines under it (unknown: 80 x 24). */
export function chartSize(
  columns: number | undefined,
  rows: number | undefined,
  legend: number,
): { width: number; height: number } {
  const width = Math.max(40, Math.min(columns || 80, 160));
  // title, x axis, x labels, legend, and the prompt's line
  const height = Math.max(6, Math.min(24, (rows || 24) - 4 - legend));
  return { width, height };
}

interface Cell {
  ch: string;
  series: number;
}

/** Each curve averaged per column of a plot `P` columns wide spanning steps [x0, x1]: [column, value], by column. */
function columns(curves: [number, number][][], x0: number, x1: number, P: number): [number, number][][] {
  const colOf = (x: number) => (x1 === x0 ? 0 : Math.round(((x - x0) / (x1 - x0)) * (P - 1)));
  return curves.map((pts) => {
    const sum = new Map<number, [number, number]>();
    for (const [x, y] of pts) {
      const c = colOf(x),
        acc = sum.get(c) ?? [0, 0];
      sum.set(c, [acc[0] + y, acc[1] + 1]);
    }
    return [...sum.entries()].map(([c, [s, n]]) => [c, s / n] as [number, number]).sort((a, b) => a[0] - b[0]);
  });
}

/** The y range drawn and its labels by row: the maximum on the top row, the minimum on the bottom one, round values between. */
function yAxis(ys: number[], H: number): { y0: number; y1: number; labels: Map<number, string> } {
  let y0 = Math.min(...ys),
    y1 = Math.max(...ys);
  if (y1 === y0) {
    // a flat curve sits on the middle row, the labels 5% (or half a unit) either side
    const pad = Math.abs(y0) * 0.05 || 0.5;
    y0 -= pad;
    y1 += pad;
  }
  const labels = new Map<number, string>([
    [0, fmtValue(y1)],
    [H - 1, fmtValue(y0)],
  ]);
  for (const t of niceTicks(y0, y1, Math.max(1, Math.floor(H / 4)))) {
    const r = Math.round(((y1 - t) / (y1 - y0)) * (H - 1));
    if (r > 0 && r < H - 1 && ![...labels.keys()].some((k) => Math.abs(k - r) <= 1)) labels.set(r, fmtValue(t));
  }
  return { y0, y1, labels };
}

export function renderAscii(series: Series[], o: AsciiOptions): string {
  const H = Math.max(2, o.height);
  const curves = series.map((s) => curve(s.pts, o.smooth));
  const evals = series.map((s) => s.evals.filter(([, y]) => Number.isFinite(y)));
  const all = [...curves.flat(), ...evals.flat()];
  if (all.length === 0) throw new InputError(`no "${o.metric}" values in the metrics files`);
  const xs = all.map((p) => p[0]);
  const x0 = Math.min(...xs),
    x1 = Math.max(...xs);
  // the range is that of what is drawn (column means), and the width of its labels sets the plot's;
  // a new width moves the means too little to change the labels' width more than once or twice
  let P = Math.max(10, o.width - 2),
    cols: [number, number][][] = [],
    ya = yAxis([0], H);
  for (let pass = 0; pass < 4; pass++) {
    cols = columns(curves, x0, x1, P);
    ya = yAxis([...cols.flat().map((p) => p[1]), ...evals.flat().map((p) => p[1])], H);
    const next = Math.max(10, o.width - Math.max(...[...ya.labels.values()].map((l) => l.length)) - 2);
    if (next === P) break;
    P = next;
  }
  const { y0, y1, labels } = ya;
  const lw = Math.max(...[...labels.values()].map((l) => l.length));
  const rowOf = (y: number) => Math.round(((y1 - y) / (y1 - y0)) * (H - 1));
  const colOf = (x: number) => (x1 === x0 ? 0 : Math.round(((x - x0) / (x1 - x0)) * (P - 1)));

  const grid: (Cell | null)[][] = Array.from({ length: H }, () => Array<Cell | null>(P).fill(null));
  const put = (r: number, c: number, ch: string, i: number) => {
    grid[Math.min(H - 1, Math.max(0, r))]![c] = { ch, series: i };
  };
  cols.forEach((pts, i) => {
    const ch = GLYPHS[i % GLYPHS.length]!;
    let prevRow = -1;
    pts.forEach(([c, y], k) => {
      if (k === 0) {
        put((prevRow = rowOf(y)), c, ch, i);
        return;
      }
      const [pc, py] = pts[k - 1]!;
      for (let cc = pc + 1; cc <= c; cc++) {
        const r = rowOf(py + ((y - py) * (cc - pc)) / (c - pc));
        // a jump of more than one row: fill the rows between in this column
        const step = Math.sign(r - prevRow);
        for (let rr = prevRow + step; step !== 0 && rr !== r; rr += step) put(rr, cc, ch, i);
        put(r, cc, ch, i);
        prevRow = r;
      }
    });
  });
  evals.forEach((pts, i) => {
    for (const [x, y] of pts) put(rowOf(y), colOf(x), VAL_GLYPH, i);
  });

  const paint = (s: string, i: number) => (o.colour ? `\x1b[${ANSI[i % ANSI.length]}m${s}\x1b[0m` : s);
  const lines: string[] = [];
  if (o.title) lines.push(`${" ".repeat(lw + 2)}${o.title}`);
  grid.forEach((row, r) => {
    const label = labels.get(r);
    const cells = row.map((cell) => (cell ? paint(cell.ch, cell.series) : " ")).join("");
    lines.push(`${(label ?? "").padStart(lw)} ${label ? "┤" : "│"}${cells}`.trimEnd());
  });

  // x axis: the first and last step at the ends, round steps between where they fit
  const xl = Array<string>(P).fill(" ");
  const axis = Array<string>(P).fill("─");
  const place = (c: number, text: string, at: number) => {
    if (at < 0 || at + text.length > P) return false;
    for (let k = Math.max(0, at - 1); k < Math.min(P, at + text.length + 1); k++) if (xl[k] !== " ") return false;
    for (let k = 0; k < text.length; k++) xl[at + k] = text[k]!;
    axis[c] = "┬";
    return true;
  };
  place(0, String(x0), 0);
  if (x1 !== x0) place(P - 1, String(x1), P - String(x1).length);
  for (const t of niceTicks(x0, x1, Math.max(1, Math.floor(P / 12)), true)) {
    if (t <= x0 || t >= x1) continue;
    const c = colOf(t);
    place(c, String(t), c - Math.floor(String(t).length / 2));
  }
  lines.push(`${" ".repeat(lw)} └${axis.join("")}`);
  lines.push(`${" ".repeat(lw + 2)}${xl.join("")}`.trimEnd());

  series.forEach((s, i) => {
    const finite = s.pts.filter(([, y]) => Number.isFinite(y));
    const ys = finite.map((p) => p[1]);
    const facts = ys.length
      ? `${ys.length} point${ys.length === 1 ? "" : "s"}, last ${fmtValue(ys[ys.length - 1]!)}, min ${fmtValue(Math.min(...ys))}, max ${fmtValue(Math.max(...ys))}`
      : "no points";
    lines.push(`${" ".repeat(lw + 2)}${paint(GLYPHS[i % GLYPHS.length]!, i)} ${s.label}  ${facts}`);
  });
  if (evals.some((e) => e.length)) lines.push(`${" ".repeat(lw + 2)}${VAL_GLYPH} validation`);
  return `${lines.join("\n")}\n`;
}
