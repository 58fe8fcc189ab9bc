// Random access to the rows of a packed dataset (pack's shards): a row's value for each key is read
// from its shard file with one positioned read, so datasets larger than memory train as well.
import { closeSync, openSync, readSync } from "node:fs";
import { join } from "node:path";
import { openShards, type Manifest } from "../data/shards.ts";
import { DTYPE_BYTES, type DType } from "../io/safetensors.ts";

export type RowValues = Record<string, Int32Array | Uint8Array | Float32Array>;

interface ShardRef {
  fd: number;
  rows: number;
  first: number; // global index of its first row
  keys: Map<string, { begin: number; rowBytes: number; dtype: DType; perRow: number }>;
}

export class ShardDataset {
  readonly manifest: Manifest;
  readonly rows: number;
  private shards: ShardRef[] = [];

  constructor(readonly dir: string, readonly split: "train" | "val" = "train") {
    const { manifest, shards } = openShards(dir, split);
    this.manifest = manifest;
    let first = 0;
    for (const s of shards) {
      const keys = new Map<string, { begin: number; rowBytes: number; dtype: DType; perRow: number }>();
      for (const t of s.header.tensors) {
        const perRow = t.shape.slice(1).reduce((a, b) => a * b, 1);
        keys.set(t.name, { begin: t.begin, rowBytes: perRow * DTYPE_BYTES[t.dtype], dtype: t.dtype, perRow });
      }
      this.shards.push({ fd: openSync(join(dir, s.entry.file), "r"), rows: s.entry.rows, first, keys });
      first += s.entry.rows;
    }
    this.rows = first;
  }

  /** Rows `idx` stacked: for each key a typed array of (idx.length, ...row shape). */
  batch(idx: ArrayLike<number>, keys: string[]): RowValues {
    const out: RowValues = {};
    for (const k of keys) {
      const spec = this.shards[0]?.keys.get(k);
      if (!spec) throw new Error(`${this.dir}: no key "${k}" in the shards`);
      const buf = new Uint8Array(idx.length * spec.rowBytes);
      for (let i = 0; i < idx.length; i++) {
        const s = this.locate(idx[i]!);
        const e = s.keys.get(k)!;
        readSync(s.fd, buf, i * e.rowBytes, e.rowBytes, e.begin + (idx[i]! - s.first) * e.rowBytes);
      }
      out[k] = spec.dtype === "I32" ? new Int32Array(buf.buffer) : spec.dtype === "F32" ? new Float32Array(buf.buffer) : buf;
    }
    return out;
  }

  private locate(row: number): ShardRef {
    if (row < 0 || row >= this.rows) throw new Error(`row ${row} outside the dataset (${this.rows} rows)`);
    let lo = 0, hi = this.shards.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.shards[mid]!.first <= row) lo = mid;
      else hi = mid - 1;
    }
    return this.shards[lo]!;
  }

  close(): void {
    for (const s of this.shards) closeSync(s.fd);
  }
}
