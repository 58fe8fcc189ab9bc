// bun cmd/ckpt-inspect.ts PATH [--stats] [--tensor NAME [--rows a:b]] [--diff OTHER] [--json]
// PATH: a checkpoint directory, a .safetensors file (ours, Hugging Face's, anyone's) or a shard
// directory. One JSON line per tensor, then a summary line; on a TTY without --json, a table.
// Headers are read without loading the file; tensors are memory-mapped and visited one at a time.
import { defineCommand } from "citty";
import { decoder, mapFile, type SafetensorsHeader, type TensorEntry } from "../lib/io/safetensors.ts";
import { resolveTarget, type Target } from "../lib/io/inspect.ts";
import { statsRef, statsGpu, GPU_STATS_MIN, type Stats } from "../lib/ops/tensor_stats.ts";
import { moduleOf } from "../lib/model/params.ts";
import { initGpu } from "../lib/gpu/index.ts";
import { InputError } from "../lib/base/errors.ts";
import { runCli } from "./_cli.ts";
import { fileSum } from "../lib/io/files.ts";
import type { FileSum } from "../lib/io/checksum.ts";
import { join } from "node:path";

/** The files whose recorded size and CRC-32 (meta.json, manifest.json) they no longer have; null when none are recorded. */
function integrity(t: Target): string[] | null {
  const sums: [string, FileSum][] = [];
  if (t.kind === "checkpoint" && t.meta?.files)
    for (const [f, s] of Object.entries<FileSum>(t.meta.files)) sums.push([f, s]);
  if (t.kind === "shards")
    for (const s of t.manifest?.shards ?? []) if (s.crc32) sums.push([s.file, { bytes: s.bytes, crc32: s.crc32 }]);
  if (!sums.length) return null;
  return sums
    .filter(([f, want]) => {
      try {
        const got = fileSum(join(t.path, f));
        return got.bytes !== want.bytes || got.crc32 !== want.crc32;
      } catch {
        return true;
      }
    })
    .map(([f]) => f);
}

const FLOAT = new Set(["F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"]);

interface Row {
  name: string;
  dtype: string;
  shape: number[];
  numel: number;
  bytes: number;
  file?: string;
  stats?: Stats;
}

function numel(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function entries(t: Target): { h: SafetensorsHeader; e: TensorEntry }[] {
  return t.files.flatMap((h) => h.tensors.map((e) => ({ h, e })));
}

async function stats(e: TensorEntry, map: Uint8Array, gpuOk: boolean): Promise<Stats> {
  const n = numel(e.shape);
  const bytes = map.subarray(e.begin, e.end);
  if (gpuOk && n >= GPU_STATS_MIN && FLOAT.has(e.dtype)) return statsGpu(e.dtype, bytes, n);
  return statsRef(e.dtype, bytes, n);
}

function fmt(x: number | null | undefined): string {
  if (x === null || x === undefined) return "-";
  if (Number.isInteger(x) && Math.abs(x) < 1e9) return String(x);
  return Math.abs(x) >= 1e4 || (Math.abs(x) < 1e-3 && x !== 0) ? x.toExponential(3) : x.toFixed(4);
}

function table(rows: Row[], withStats: boolean): string {
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
    ...(withStats
      ? [r.stats!.mean, r.stats!.std, r.stats!.min, r.stats!.max, r.stats!.l2, r.stats!.nan, r.stats!.inf].map(fmt)
      : []),
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => c.map((x, i) => (i < 2 ? x.padEnd(w[i]!) : x.padStart(w[i]!))).join("  ");
  return [line(head), ...cells.map(line)].join("\n");
}

function parseRows(s: string | undefined, n: number): [number, number] {
  if (!s) return [0, n];
  const m = s.match(/^(\d*):(\d*)$/);
  if (!m) throw new InputError(`--rows ${s}: expected a:b (either side may be empty)`);
  const a = m[1] ? Number(m[1]) : 0,
    b = m[2] ? Math.min(Number(m[2]), n) : n;
  if (a > b) throw new InputError(`--rows ${s}: start is after end`);
  return [a, b];
}

export const inspect = defineCommand({
  meta: { name: "ckpt-inspect", description: "Look inside checkpoints, safetensors files and data shards" },
  args: {
    path: { type: "positional", required: true, description: "checkpoint dir, .safetensors file or shard dir" },
    stats: { type: "boolean", default: false, description: "mean, std, min, max, L2 norm, NaN/Inf counts per tensor" },
    tensor: { type: "string", description: "print this tensor's values" },
    rows: { type: "string", description: "with --tensor: rows a:b of the first axis" },
    diff: {
      type: "string",
      description: "compare with another checkpoint/file: per-tensor max abs and relative difference",
    },
    json: { type: "boolean", default: false, description: "JSONL even on a TTY" },
  },
  async run({ args }) {
    const t = resolveTarget(args.path);
    const tty = Boolean(process.stdout.isTTY) && !args.json;
    const out = (o: unknown) => console.log(JSON.stringify(o));

    if (args.tensor !== undefined) {
      const hit = entries(t).find((x) => x.e.name === args.tensor);
      if (!hit)
        throw new InputError(
          `${t.path}: no tensor "${args.tensor}" (${entries(t).length} tensors; list them without --tensor)`,
        );
      const { h, e } = hit;
      const map = mapFile(h.path);
      const get = decoder(e.dtype, map.subarray(e.begin, e.end));
      const rowLen = e.shape.length > 1 ? numel(e.shape.slice(1)) : 1;
      const nrows = e.shape.length ? e.shape[0]! : 1;
      const [a, b] = parseRows(args.rows, nrows);
      const values = Array.from({ length: b - a }, (_, r) =>
        e.shape.length > 1 ? Array.from({ length: rowLen }, (_, k) => get((a + r) * rowLen + k)) : get(a + r),
      );
      out({ name: e.name, dtype: e.dtype, shape: e.shape, rows: [a, b], values });
      return;
    }

    if (args.diff !== undefined) {
      const o = resolveTarget(args.diff);
      const mine = new Map(entries(t).map((x) => [x.e.name, x]));
      const theirs = new Map(entries(o).map((x) => [x.e.name, x]));
      let maxAbs = 0,
        compared = 0;
      for (const [name, x] of mine) {
        const y = theirs.get(name);
        if (!y) {
          out({ name, only_in: t.path });
          continue;
        }
        if (x.e.shape.join() !== y.e.shape.join()) {
          out({ name, shape: x.e.shape, other_shape: y.e.shape, comparable: false });
          continue;
        }
        const n = numel(x.e.shape);
        const ga = decoder(x.e.dtype, mapFile(x.h.path).subarray(x.e.begin, x.e.end)),
          gb = decoder(y.e.dtype, mapFile(y.h.path).subarray(y.e.begin, y.e.end));
        let d = 0,
          m = 0;
        for (let i = 0; i < n; i++) {
          const va = ga(i),
            vb = gb(i);
          d = Math.max(d, Math.abs(va - vb));
          m = Math.max(m, Math.abs(vb));
        }
        compared++;
        maxAbs = Math.max(maxAbs, d);
        out({ name, max_abs_diff: d, max_rel_diff: m > 0 ? d / m : d === 0 ? 0 : Infinity });
      }
      for (const name of theirs.keys()) if (!mine.has(name)) out({ name, only_in: o.path });
      out({
        event: "summary",
        compared,
        only_in_first: [...mine.keys()].filter((k) => !theirs.has(k)).length,
        only_in_second: [...theirs.keys()].filter((k) => !mine.has(k)).length,
        max_abs_diff: maxAbs,
      });
      return;
    }

    let gpuOk = false;
    if (args.stats) {
      try {
        await initGpu();
        gpuOk = true;
      } catch {
        gpuOk = false; // statistics still work on the host
      }
    }
    const rows: Row[] = [];
    const byModule: Record<string, number> = {};
    let total = 0,
      bytes = 0;
    for (const h of t.files) {
      const map = args.stats ? mapFile(h.path) : null;
      for (const e of h.tensors) {
        const n = numel(e.shape);
        const r: Row = { name: e.name, dtype: e.dtype, shape: e.shape, numel: n, bytes: e.end - e.begin };
        if (t.kind === "shards") r.file = h.path.split("/").pop();
        if (map) r.stats = await stats(e, map, gpuOk);
        rows.push(r);
        total += n;
        bytes += r.bytes;
        byModule[moduleOf(e.name)] = (byModule[moduleOf(e.name)] ?? 0) + n;
        if (!tty) out(r.stats ? { ...r, stats: undefined, ...r.stats } : r);
      }
    }
    if (tty) console.log(table(rows, args.stats));
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
    const damaged = integrity(t);
    if (damaged) {
      // inspecting a damaged file is useful (what holds NaN?), so say it and go on
      summary.integrity = damaged.length ? { mismatch: damaged } : "ok";
      for (const f of damaged)
        console.error(
          `bunlm: warning: ${join(t.path, f)}: its size or CRC-32 differs from what ${t.kind === "shards" ? "manifest.json" : "meta.json"} recorded; it is not the file bunlm wrote`,
        );
    }
    if (rows.some((r) => r.stats && (r.stats.nan || r.stats.inf)))
      summary.non_finite = rows.filter((r) => r.stats && (r.stats.nan || r.stats.inf)).map((r) => r.name);
    if (tty)
      console.log(
        `${t.kind} ${t.path}: ${rows.length} tensors, ${total} values, ${bytes} bytes${
          summary.params_by_module
            ? " — " +
              Object.entries(byModule)
                .map(([k, v]) => `${k} ${v}`)
                .join(", ")
            : ""
        }`,
      );
    else out(summary);
  },
});

if (import.meta.main) await runCli(inspect);
