// What ckpt-inspect looks at: a checkpoint directory (model.safetensors + config.json [+ meta.json]),
// a shard directory (manifest.json + shards) or any .safetensors file — resolved to its safetensors
// files with headers validated, plus the JSON beside them. File names an index or a manifest lists
// must be plain names in the same directory, and only regular files are opened (files.ts). Then what
// is read from it without the GPU: one tensor's values, the integrity sums, a diff of two targets.
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { InputError } from "../base/errors.ts";
import type { FileSum } from "./checksum.ts";
import { fileSum, plainName, readJson } from "./files.ts";
import {
  decoder,
  mapFile,
  readHeader,
  SafetensorsError,
  type SafetensorsHeader,
  type TensorEntry,
} from "./safetensors.ts";

export interface Target {
  kind: "checkpoint" | "shards" | "safetensors";
  path: string;
  files: SafetensorsHeader[];
  config?: unknown;
  meta?: any;
  manifest?: any;
}

export function resolveTarget(path: string): Target {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(path);
  } catch {
    throw new SafetensorsError(`${path}: no such file or directory`);
  }
  // anything but a directory is read as a safetensors file (a FIFO or device is refused there)
  if (!st.isDirectory()) return { kind: "safetensors", path, files: [readHeader(path)] };
  if (existsSync(join(path, "model.safetensors"))) {
    const t: Target = { kind: "checkpoint", path, files: [readHeader(join(path, "model.safetensors"))] };
    if (existsSync(join(path, "config.json"))) t.config = readJson(join(path, "config.json"));
    if (existsSync(join(path, "meta.json"))) t.meta = readJson(join(path, "meta.json"));
    return t;
  }
  if (existsSync(join(path, "model.safetensors.index.json"))) {
    // a sharded Hugging Face checkpoint: every shard the index names
    const where = join(path, "model.safetensors.index.json");
    const index: any = readJson(where);
    const files = [...new Set(Object.values<unknown>(index?.weight_map ?? {}).map((f) => plainName(f, where)))];
    if (!files.length) throw new SafetensorsError(`${join(path, "model.safetensors.index.json")}: no "weight_map"`);
    const t: Target = { kind: "checkpoint", path, files: files.map((f) => readHeader(join(path, f))) };
    if (existsSync(join(path, "config.json"))) t.config = readJson(join(path, "config.json"));
    return t;
  }
  if (existsSync(join(path, "manifest.json"))) {
    const manifest: any = readJson(join(path, "manifest.json"));
    if (!Array.isArray(manifest?.shards))
      throw new SafetensorsError(`${join(path, "manifest.json")}: not a shard manifest (no "shards" list)`);
    const where = join(path, "manifest.json");
    return {
      kind: "shards",
      path,
      manifest,
      files: manifest.shards.map((s: any) => readHeader(join(path, plainName(s?.file, where)))),
    };
  }
  throw new SafetensorsError(
    `${path}: no checkpoint (model.safetensors), shard manifest (manifest.json) or safetensors file here`,
  );
}

export function numel(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Every tensor of the target with the file header it lives in, in file order. */
export function entries(t: Target): { h: SafetensorsHeader; e: TensorEntry }[] {
  return t.files.flatMap((h) => h.tensors.map((e) => ({ h, e })));
}

/** The file a target's integrity sums are recorded in, for messages. */
export function sumsFile(t: Target): string {
  return t.kind === "shards" ? "manifest.json" : "meta.json";
}

/** The files whose recorded size and CRC-32 (meta.json, manifest.json) they no longer have; null when none are recorded. */
export function integrity(t: Target): string[] | null {
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

/** `--rows a:b` (either side may be empty) as a half-open range of the first axis, clamped to `n`. */
export function parseRows(s: string | undefined, n: number): [number, number] {
  if (!s) return [0, n];
  const m = s.match(/^(\d*):(\d*)$/);
  if (!m) throw new InputError(`--rows ${s}: expected a:b (either side may be empty)`);
  const a = m[1] ? Number(m[1]) : 0,
    b = m[2] ? Math.min(Number(m[2]), n) : n;
  if (a > b) throw new InputError(`--rows ${s}: start is after end`);
  return [a, b];
}

export interface TensorValues {
  name: string;
  dtype: string;
  shape: number[];
  rows: [number, number];
  /** one number per row of a vector, one array per row otherwise */
  values: (number | number[])[];
}

/** The values of tensor `name` (rows a:b of its first axis), decoded from the memory-mapped file. */
export function tensorValues(t: Target, name: string, rows?: string): TensorValues {
  const all = entries(t);
  const hit = all.find((x) => x.e.name === name);
  if (!hit) throw new InputError(`${t.path}: no tensor "${name}" (${all.length} tensors; list them without --tensor)`);
  const { h, e } = hit;
  const get = decoder(e.dtype, mapFile(h.path).subarray(e.begin, e.end));
  const rowLen = e.shape.length > 1 ? numel(e.shape.slice(1)) : 1;
  const nrows = e.shape.length ? e.shape[0]! : 1;
  const [a, b] = parseRows(rows, nrows);
  const values = Array.from({ length: b - a }, (_, r) =>
    e.shape.length > 1 ? Array.from({ length: rowLen }, (_, k) => get((a + r) * rowLen + k)) : get(a + r),
  );
  return { name: e.name, dtype: e.dtype, shape: e.shape, rows: [a, b], values };
}

/**
 * `t` against `o`, tensor by tensor (by name): one record per tensor of either side — its maximum
 * absolute and relative difference (relative to the largest magnitude in `o`), a shape mismatch, or
 * the side it is only in — then a summary record.
 */
export function* diffTargets(t: Target, o: Target): Generator<Record<string, unknown>> {
  const mine = new Map(entries(t).map((x) => [x.e.name, x]));
  const theirs = new Map(entries(o).map((x) => [x.e.name, x]));
  let maxAbs = 0,
    compared = 0;
  for (const [name, x] of mine) {
    const y = theirs.get(name);
    if (!y) {
      yield { name, only_in: t.path };
      continue;
    }
    if (x.e.shape.join() !== y.e.shape.join()) {
      yield { name, shape: x.e.shape, other_shape: y.e.shape, comparable: false };
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
    yield { name, max_abs_diff: d, max_rel_diff: m > 0 ? d / m : d === 0 ? 0 : Infinity };
  }
  for (const name of theirs.keys()) if (!mine.has(name)) yield { name, only_in: o.path };
  yield {
    event: "summary",
    compared,
    only_in_first: [...mine.keys()].filter((k) => !theirs.has(k)).length,
    only_in_second: [...theirs.keys()].filter((k) => !mine.has(k)).length,
    max_abs_diff: maxAbs,
  };
}
