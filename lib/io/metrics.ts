// Reading a run's metrics.jsonl back (for plot): one metric's value at each optimizer step ("step"
// events) and the validation losses ("eval" events), labelled by the run directory. A run still
// training appends to the file while it is read, so a last line without its newline is an unfinished
// write and is left out rather than refused.
import { statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { InputError } from "../base/errors.ts";
import { closest } from "../base/suggest.ts";
import { readRegular } from "./files.ts";

/** One run's curve: the shape lib/plot draws (its Series). */
export interface MetricSeries {
  label: string;
  /** [step, value] of each step line that has the metric as a number */
  pts: [number, number][];
  /** [step, val_loss] of each eval line, when the metric is the loss */
  evals: [number, number][];
}

/** A run directory stands for its metrics.jsonl. */
export function metricsFile(path: string): string {
  let dir = false;
  try {
    dir = statSync(path).isDirectory();
  } catch {}
  return dir ? join(path, "metrics.jsonl") : path;
}

/** The series of `metric` in one metrics file, and the numeric fields its step and eval lines have. */
export function readMetrics(path: string, metric: string): MetricSeries & { fields: Set<string> } {
  const file = metricsFile(path);
  if (file !== path && !statSync(file, { throwIfNoEntry: false }))
    throw new InputError(`${path}: a directory without metrics.jsonl (give a run directory or a metrics file)`);
  const text = readRegular(file).toString("utf8");
  const lines = text.split("\n");
  const label = basename(file) === "metrics.jsonl" ? basename(dirname(file)) : basename(file);
  const out: MetricSeries & { fields: Set<string> } = { label, pts: [], evals: [], fields: new Set() };
  lines.forEach((line, i) => {
    if (!line.trim()) return;
    let e: any;
    try {
      e = JSON.parse(line);
    } catch {
      if (i === lines.length - 1) return; // no newline after it: a line still being written
      throw new InputError(`${file}:${i + 1}: not valid JSON`);
    }
    if (e === null || typeof e !== "object" || Array.isArray(e))
      throw new InputError(`${file}:${i + 1}: expected a JSON object`);
    if (e.event === "step") {
      for (const [k, v] of Object.entries(e)) if (typeof v === "number" && k !== "step") out.fields.add(k);
      if (typeof e[metric] === "number") out.pts.push([e.step, e[metric]]);
    }
    if (e.event === "eval") {
      for (const [k, v] of Object.entries(e)) if (typeof v === "number" && k !== "step") out.fields.add(k);
      // the loss curve shows validation losses as points; `--metric val_loss` draws them as the curve
      if (metric === "loss" && typeof e.val_loss === "number") out.evals.push([e.step, e.val_loss]);
      else if (typeof e[metric] === "number") out.pts.push([e.step, e[metric]]);
    }
  });
  return out;
}

/**
 * One series per path (a metrics file or a run directory). Two runs with the same directory name
 * are labelled by the paths given, so the legend tells them apart. Refuses a metric that no file
 * has, naming the closest field there is.
 */
export function readRuns(paths: string[], metric: string): MetricSeries[] {
  if (!paths.length) throw new InputError("give one or more metrics.jsonl files or run directories");
  const runs = paths.map((p) => readMetrics(p, metric));
  const fields = new Set(runs.flatMap((r) => [...r.fields]));
  if (runs.every((r) => !r.pts.length && !r.evals.length)) {
    const near = closest(metric, [...fields]);
    throw new InputError(
      `--metric ${metric}: no step or eval line has it${near ? ` (did you mean ${near}?)` : ""}; the lines have ${[...fields].sort().join(", ") || "no numeric fields"}`,
    );
  }
  return runs.map(({ label, pts, evals }, i) => {
    const shared = runs.some((r, j) => j !== i && r.label === label);
    return { label: shared ? paths[i]!.replace(/\/+$/, "") : label, pts, evals };
  });
}
