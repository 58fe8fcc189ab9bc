// Random access to the rows of a packed dataset (pack's shards): a row's value for each key is read
// from its shard file with one positioned read, so datasets larger than memory train as well.
// Opening reads every shard once, front to back (scanShard): the checksum pack recorded and the range
// of every value are checked before a step runs, through the same descriptors the batches are then
// read from, so a file swapped after the check is not the one trained on.
import { closeSync, readSync } from "node:fs";
import { join } from "node:path";
import { openShards, scanShard, type Manifest } from "../data/shards.ts";
import { DTYPE_BYTES, type DType } from "../io/safetensors.ts";
import { openRegular } from "../io/files.ts";

export type RowValues = Record<string, Int32Array | Uint8Array | Float32Array>;

interface ShardRef {
  fd: number;
  rows: number;
  first: number; // global index of its first row
  keys: Map<string, { begin: number; rowBytes: number; dtype: DType; perRow: number }>;
}

export interface ShardDatasetOpts {
  /** read every shard once to verify checksums and value ranges (default true; off only to measure its cost) */
  scan?: boolean;
}

export class ShardDataset {
  readonly manifest: Manifest;
  readonly rows: number;
  /**
   * Targets that carry loss in this split: the ones of loss_mask (sft) or every target (seq); null for
   * dpo and grpo, or sft opened with scan: false. Zero means training would learn nothing.
   */
  readonly trainedTokens: number | null;
  private shards: ShardRef[] = [];

  constructor(
    readonly dir: string,
    readonly split: "train" | "val" = "train",
    opts: ShardDatasetOpts = {},
  ) {
    const { manifest, shards } = openShards(dir, split);
    this.manifest = manifest;
    let first = 0,
      lossOnes = 0;
    try {
      for (const s of shards) {
        const keys = new Map<string, { begin: number; rowBytes: number; dtype: DType; perRow: number }>();
        for (const t of s.header.tensors) {
          const perRow = t.shape.slice(1).reduce((a, b) => a * b, 1);
          keys.set(t.name, { begin: t.begin, rowBytes: perRow * DTYPE_BYTES[t.dtype], dtype: t.dtype, perRow });
        }
        const fd = openRegular(join(dir, s.entry.file));
        this.shards.push({ fd, rows: s.entry.rows, first, keys });
        if (opts.scan ?? true) lossOnes += scanShard(fd, s, manifest).loss_mask ?? 0;
        first += s.entry.rows;
      }
    } catch (e) {
      this.close();
      throw e;
    }
    this.rows = first;
    const scanned = opts.scan ?? true;
    this.trainedTokens =
      manifest.type === "seq" ? first * manifest.seq_len : manifest.type === "sft" && scanned ? lossOnes : null;
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
        readFully(s.fd, buf, i * e.rowBytes, e.rowBytes, e.begin + (idx[i]! - s.first) * e.rowBytes);
      }
      out[k] =
        spec.dtype === "I32" ? new Int32Array(buf.buffer) : spec.dtype === "F32" ? new Float32Array(buf.buffer) : buf;
    }
    return out;
  }

  private locate(row: number): ShardRef {
    if (row < 0 || row >= this.rows) throw new Error(`row ${row} outside the dataset (${this.rows} rows)`);
    let lo = 0,
      hi = this.shards.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.shards[mid]!.first <= row) lo = mid;
      else hi = mid - 1;
    }
    return this.shards[lo]!;
  }

  close(): void {
    for (const s of this.shards) closeSync(s.fd);
    this.shards = [];
  }
}

/** A positioned read of exactly n bytes; a shard cut short while training is an error, not zeros. */
function readFully(fd: number, buf: Uint8Array, off: number, n: number, pos: number): void {
  for (let got = 0; got < n; ) {
    const k = readSync(fd, buf, off + got, n - got, pos + got);
    if (k <= 0)
      throw new Error(`a shard ended at byte ${pos + got} while reading a batch (was it truncated during training?)`);
    got += k;
  }
}
