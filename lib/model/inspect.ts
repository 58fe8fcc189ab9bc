// ckpt-inspect's report on a target (lib/io/inspect.ts resolves it): one row per tensor (name, dtype,
// shape, size, and with statistics mean/std/min/max/L2/NaN/Inf), the summary (parameters by module,
// config, the meta of the step, the integrity of the files), and both as a person reads them on a
// terminal: an aligned table and one closing line. Tensors are visited one at a time from the
// memory-mapped file, so a checkpoint larger than memory is inspected in place.
import { entries, integrity, numel, resolveTarget, sumsFile, type Target } from "../io/inspect.ts";
import { readHeader } from "../io/safetensors.ts";
import { readJson } from "../io/files.ts";
import { existsSync } from "node:fs";
import { ADAPTER_MODEL, isAdapterDir, readAdapterConfig } from "./lora.ts";
import { mapFile, type TensorEntry } from "../io/safetensors.ts";
import { log } from "../base/log.ts";
import { join } from "node:path";
import { initGpu } from "../gpu/index.ts";
import { GPU_STATS_MIN, type Stats, statsGpu, statsRef } from "../ops/tensor_stats.ts";
import { moduleOf } from "./params.ts";

const FLOAT = new Set(["F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"]);

export interface Row {
  name: string;
  dtype: string;
  shape: number[];
  numel: number;
  bytes: number;
  /** the shard file, for a shard directory */
  file?: string;
  stats?: Stats;
}

const onGpu = (e: TensorEntry) => numel(e.shape) >= GPU_STATS_MIN && FLOAT.has(e.dtype);

/**
 * The target's tensors in file order, with statistics when `withStats`: large float tensors on the
 * GPU when one is usable (the host computes the same numbers, slower, when none is).
 */
export async function* tensorRows(t: Target, withStats: boolean): AsyncGenerator<Row> {
  let gpuOk = false;
  if (withStats && entries(t).some((x) => onGpu(x.e))) {
    try {
      await initGpu();
      gpuOk = true;
    } catch {
      log.debug("ckpt-inspect: no usable GPU; statistics are computed on the host");
    }
  }
  for (const h of t.files) {
    const map = withStats ? mapFile(h.path) : null;
    for (const e of h.tensors) {
      const n = numel(e.shape);
      const r: Row = { name: e.name, dtype: e.dtype, shape: e.shape, numel: n, bytes: e.end - e.begin };
      if (t.kind === "shards") r.file = h.path.split("/").pop();
      if (map) {
        const bytes = map.subarray(e.begin, e.end);
        r.stats = gpuOk && onGpu(e) ? await statsGpu(e.dtype, bytes, n) : statsRef(e.dtype, bytes, n);
      }
      yield r;
    }
  }
}

/** What ckpt-inspect looks at: a LoRA adapter directory (its adapter_model.safetensors, meta.json when a run wrote it), or what lib/io/inspect.ts resolves. */
export function inspectTarget(path: string): Target {
  if (!isAdapterDir(path) || existsSync(join(path, "model.safetensors"))) return resolveTarget(path);
  const t: Target = { kind: "checkpoint", path, files: [readHeader(join(path, ADAPTER_MODEL))] };
  if (existsSync(join(path, "meta.json"))) t.meta = readJson(join(path, "meta.json")) as Target["meta"];
  return t;
}

/** A row as its JSON line: the statistics flattened beside the header fields. */
export function rowRecord(r: Row): Record<string, unknown> {
  const { stats, ...rest } = r;
  return stats ? { ...rest, ...stats } : rest;
}

/**
 * The summary record of `rows` (all of the target's): counts, parameters by module, config, meta,
 * the shard manifest, integrity against the recorded sums (each damaged file is also warned about:
 * inspecting a damaged file is useful — what holds NaN? — so it goes on) and the non-finite tensors.
 */
export function inspectSummary(t: Target, rows: Row[]): Record<string, unknown> {
  const byModule: Record<string, number> = {};
  let total = 0,
    bytes = 0;
  for (const r of rows) {
    total += r.numel;
    bytes += r.bytes;
    byModule[moduleOf(r.name)] = (byModule[moduleOf(r.name)] ?? 0) + r.numel;
  }
  const summary: Record<string, unknown> = {
    event: "summary",
    kind: t.kind,
    path: t.path,
    tensors: rows.length,
    total_params: total,
    bytes,
  };
  if (t.kind !== "shards") summary.params_by_module = byModule;
  if (t.config) summary.config = t.config;
  if (t.meta)
    summary.meta = {
      step: t.meta.step,
      epoch: t.meta.epoch,
      consumed_samples: t.meta.consumed_samples,
      strategy: t.meta.strategy,
      reason: t.meta.reason,
      last_metrics: t.meta.metrics?.[t.meta.metrics.length - 1] ?? null,
    };
  if (t.manifest) summary.manifest = t.manifest;
  if (t.kind === "checkpoint" && isAdapterDir(t.path)) {
    const a = readAdapterConfig(t.path);
    summary.adapter = { rank: a.spec.rank, alpha: a.spec.alpha, targets: a.spec.targets, base: a.base };
  }
  const damaged = integrity(t);
  if (damaged) {
    summary.integrity = damaged.length ? { mismatch: damaged } : "ok";
    for (const f of damaged)
      log.warn(
        `${join(t.path, f)}: its size or CRC-32 differs from what ${sumsFile(t)} recorded; it is not the file bunlm wrote`,
      );
  }
  const nonFinite = rows.filter((r) => r.stats && (r.stats.nan || r.stats.inf)).map((r) => r.name);
  if (nonFinite.length) summary.non_finite = nonFinite;
  return summary;
}

/** A statistic in a table cell: integers as they are, the rest to 4 decimals or 4 significant digits. */
export function fmtStat(x: number | null | undefined): string {
  if (x === null || x === undefined) return "-";
  if (Number.isInteger(x) && Math.abs(x) < 1e9) return String(x);
  return Math.abs(x) >= 1e4 || (Math.abs(x) < 1e-3 && x !== 0) ? x.toExponential(3) : x.toFixed(4);
}

const paint = (on: boolean, code: string, s: string) => (on ? `\x1b[${code}m${s}\x1b[0m` : s);

/**
 * The rows as an aligned table (names and dtypes left, numbers right). With `colour`, the header is
 * bold and a non-zero NaN or Inf count red: the one cell that means trouble.
 */
export function formatTable(rows: Row[], withStats: boolean, colour = false): string {
  const head = [
    "name",
    "dtype",
    "shape",
    "numel",
    ...(withStats ? ["mean", "std", "min", "max", "l2", "nan", "inf"] : []),
  ];
  const cells = rows.map((r) => [
    r.name,
    r.dtype,
    `[${r.shape.join(",")}]`,
    String(r.numel),
    ...(withStats && r.stats
      ? [r.stats.mean, r.stats.std, r.stats.min, r.stats.max, r.stats.l2, r.stats.nan, r.stats.inf].map(fmtStat)
      : []),
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const pad = (x: string, i: number) => (i < 2 ? x.padEnd(w[i]!) : x.padStart(w[i]!));
  const line = (c: string[], bad = (_i: number) => false) =>
    c.map((x, i) => (bad(i) ? paint(colour, "31", pad(x, i)) : pad(x, i))).join("  ");
  return [
    paint(colour, "1", line(head)),
    ...cells.map((c) => line(c, (i) => i >= head.length - 2 && withStats && c[i] !== "0")),
  ].join("\n");
}

/** The closing line under the table: what the target is, its size, and parameters by module. */
export function summaryText(summary: Record<string, unknown>): string {
  const byModule = summary.params_by_module as Record<string, number> | undefined;
  const modules = byModule
    ? ` — ${Object.entries(byModule)
        .map(([k, v]) => `${k} ${v}`)
        .join(", ")}`
    : "";
  const n = summary.tensors as number;
  return `${summary.kind} ${summary.path}: ${n} tensor${n === 1 ? "" : "s"}, ${summary.total_params} values, ${summary.bytes} bytes${modules}`;
}
