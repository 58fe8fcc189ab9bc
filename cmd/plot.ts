// bun cmd/plot.ts METRICS.jsonl... --out loss.svg [--metric loss] [--smooth 0.6] [--title TEXT]
// Loss curves as an SVG picture: one line per metrics file (a run), overlaid on shared axes with
// labelled ticks, a legend named after each run's directory, and optional exponential smoothing
// (the raw curve stays, faint, behind the smoothed one). Validation points ("eval" events) are dots.
import { defineCommand } from "citty";
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { InputError } from "../lib/base/errors.ts";
import { runCli } from "./_cli.ts";
import { checkOutFile } from "../lib/io/out_dir.ts";
import { writeFileAtomic } from "../lib/io/files.ts";

// marks the pictures plot writes, so that --overwrite replaces only those (lib/io/out_dir.ts)
const MARK = "<!-- bunlm plot -->";

function isPlot(file: string): boolean {
  try {
    const fd = openSync(file, "r");
    const head = Buffer.alloc(1024);
    const n = readSync(fd, head, 0, head.length, 0);
    closeSync(fd);
    return head.subarray(0, n).toString("utf8").includes(MARK);
  } catch {
    return false;
  }
}

const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"];

interface Series {
  label: string;
  pts: [number, number][];
  evals: [number, number][];
}

function niceTicks(lo: number, hi: number, n = 6): number[] {
  if (hi <= lo) hi = lo + 1;
  const raw = (hi - lo) / n,
    mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const out: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + 1e-9; t += step) out.push(+t.toPrecision(12));
  return out;
}

export function ema(ys: number[], a: number): number[] {
  let s = ys[0] ?? 0;
  return ys.map((y, i) => (s = i === 0 ? y : a * s + (1 - a) * y));
}

export function renderSvg(series: Series[], o: { metric: string; smooth: number; title: string }): string {
  const W = 800,
    H = 480,
    L = 70,
    R = 170,
    T = 40,
    B = 55;
  const all = series.flatMap((s) => [...s.pts, ...s.evals]);
  if (all.length === 0) throw new InputError(`no "${o.metric}" values in the metrics files`);
  const xs = all.map((p) => p[0]),
    ys = all.map((p) => p[1]).filter(Number.isFinite);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  const pad = (y1 - y0) * 0.05 || 0.5;
  y0 -= pad;
  y1 += pad;
  const X = (x: number) => L + ((x - x0) / (x1 - x0 || 1)) * (W - L - R);
  const Y = (y: number) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  const e: string[] = [];
  e.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
  );
  e.push(MARK);
  e.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  e.push(`<text x="${(L + W - R) / 2}" y="22" text-anchor="middle" font-size="15">${esc(o.title)}</text>`);
  for (const t of niceTicks(y0, y1)) {
    e.push(`<line x1="${L}" x2="${W - R}" y1="${Y(t)}" y2="${Y(t)}" stroke="#eee"/>`);
    e.push(`<text x="${L - 6}" y="${Y(t) + 4}" text-anchor="end">${t}</text>`);
  }
  for (const t of niceTicks(x0, x1)) {
    e.push(`<line x1="${X(t)}" x2="${X(t)}" y1="${T}" y2="${H - B}" stroke="#f3f3f3"/>`);
    e.push(`<text x="${X(t)}" y="${H - B + 16}" text-anchor="middle">${t}</text>`);
  }
  e.push(`<rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="none" stroke="#444"/>`);
  e.push(`<text x="${(L + W - R) / 2}" y="${H - 12}" text-anchor="middle">optimizer step</text>`);
  e.push(`<text transform="translate(18 ${(T + H - B) / 2}) rotate(-90)" text-anchor="middle">${esc(o.metric)}</text>`);
  series.forEach((s, i) => {
    const c = COLORS[i % COLORS.length]!;
    const path = (p: [number, number][]) =>
      p
        .filter(([, y]) => Number.isFinite(y))
        .map(([x, y], k) => `${k ? "L" : "M"}${X(x).toFixed(1)},${Y(y).toFixed(1)}`)
        .join("");
    if (o.smooth > 0 && s.pts.length > 1) {
      e.push(`<path d="${path(s.pts)}" fill="none" stroke="${c}" stroke-opacity="0.25" stroke-width="1"/>`);
      const sm = ema(
        s.pts.map((p) => p[1]),
        o.smooth,
      );
      e.push(`<path d="${path(s.pts.map((p, k) => [p[0], sm[k]!]))}" fill="none" stroke="${c}" stroke-width="2"/>`);
    } else e.push(`<path d="${path(s.pts)}" fill="none" stroke="${c}" stroke-width="2"/>`);
    for (const [x, y] of s.evals)
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
  return e.join("\n") + "\n";
}

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

export function readSeries(path: string, metric: string, label?: string): Series {
  // a run directory stands for its metrics.jsonl
  if (existsSync(path) && statSync(path).isDirectory()) path = join(path, "metrics.jsonl");
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    throw new InputError(`${path}: no such file`);
  }
  const s: Series = {
    label: label ?? (basename(path) === "metrics.jsonl" ? basename(dirname(path)) : basename(path)),
    pts: [],
    evals: [],
  };
  text.split("\n").forEach((line, i) => {
    if (!line.trim()) return;
    let e: any;
    try {
      e = JSON.parse(line);
    } catch {
      throw new InputError(`${path}:${i + 1}: not valid JSON`);
    }
    if (e.event === "step" && typeof e[metric] === "number") s.pts.push([e.step, e[metric]]);
    if (e.event === "eval" && metric === "loss" && typeof e.val_loss === "number") s.evals.push([e.step, e.val_loss]);
  });
  return s;
}

const plot = defineCommand({
  meta: { name: "plot", description: "Draw metrics.jsonl curves (several runs overlaid) as an SVG" },
  args: {
    out: { type: "string", required: true, description: "output .svg file (new, or an earlier plot with --overwrite)" },
    overwrite: { type: "boolean", default: false, description: "replace an earlier plot at --out" },
    metric: { type: "string", default: "loss", description: "the step field to plot" },
    smooth: { type: "string", default: "0", description: "exponential smoothing factor in [0, 1)" },
    title: { type: "string", default: "", description: "picture title" },
  },
  async run({ args }) {
    const files = (args as any)._ as string[];
    if (!files.length) throw new InputError("give one or more metrics.jsonl files");
    const smooth = Number(args.smooth);
    if (!(smooth >= 0 && smooth < 1)) throw new InputError(`--smooth ${args.smooth}: expected a number in [0, 1)`);
    if (!/\.svg$/i.test(args.out))
      throw new InputError(`--out ${args.out}: plot draws SVG; give a name ending in .svg`);
    checkOutFile(args.out, { flag: "--out", command: "plot", overwrite: args.overwrite, isEarlier: isPlot });
    const series = files.map((f) => readSeries(f, args.metric));
    const svg = renderSvg(series, { metric: args.metric, smooth, title: args.title || `${args.metric} per step` });
    writeFileAtomic(args.out, svg);
    console.log(
      JSON.stringify({
        event: "summary",
        out: args.out,
        runs: series.map((s) => ({
          label: s.label,
          points: s.pts.length,
          evals: s.evals.length,
          last: s.pts[s.pts.length - 1]?.[1] ?? null,
        })),
      }),
    );
  },
});

if (import.meta.main) await runCli(plot);
