// Rows of a dataset on their way to shards. Every row of a dataset has the same keys and per-row
// shapes, so rows are fixed-size records: they stream to one temporary file (memory stays bounded
// whatever the corpus size), and at the end a seeded permutation of the row numbers gives an exact
// global shuffle and the validation split; each shard is then gathered from the temporary file and
// written as safetensors. A row may carry a JSON side record (grpo's extra fields), kept row-aligned
// in a JSONL file beside its shard. Each file's size and CRC-32 go into the manifest, so training
// can tell a damaged or swapped shard from the one packed. The output directory appears whole or not at all.
import { closeSync, mkdirSync, openSync, readSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { DTYPE_BYTES, writeSafetensors, type DType } from "../io/safetensors.ts";
import { writeFileAtomic } from "../io/files.ts";
import { Rng } from "../base/rng.ts";
import { packOutPolicy, swapIn } from "./pack_out.ts";
import { tempDir } from "../io/stale.ts";
import type { OutPolicy } from "../io/out_dir.ts";

export interface KeySpec {
  name: string;
  dtype: DType;
  /** shape of one row's value (the shard's tensor is [rows, ...shape]) */
  shape: number[];
}

export type Row = Record<string, ArrayLike<number>>;

export interface FinishOpts {
  seed: number;
  valFraction: number;
  /** rows per shard; default: shards of about 64 MiB */
  shardRows?: number;
  manifest: Record<string, unknown>;
}

export interface Split {
  rows: number;
  /** bytes and crc32 of each file, recorded in the manifest and verified when training loads it */
  shards: {
    file: string;
    rows: number;
    bytes: number;
    crc32: string;
    side?: string;
    side_bytes?: number;
    side_crc32?: string;
  }[];
}

const WRITE_BUF = 4 << 20;

export class RowStore {
  readonly recordBytes: number;
  private sizes: number[];
  private tmpDir: string;
  private fd: number;
  private buf: Uint8Array;
  private view: DataView;
  private used = 0;
  private sideFd: number | null = null;
  private sideOffsets: number[] = [];
  private sideAt = 0;
  rows = 0;

  /** policy: what may be at outDir (lib/data/pack_out.ts), checked again just before the swap */
  constructor(
    private keys: KeySpec[],
    private outDir: string,
    withSide = false,
    private policy: OutPolicy = packOutPolicy(false),
  ) {
    this.sizes = keys.map((k) => k.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[k.dtype]);
    this.recordBytes = this.sizes.reduce((a, b) => a + b, 0);
    // memory first: a failed allocation must not leave a temporary directory behind
    this.buf = new Uint8Array(Math.max(WRITE_BUF, this.recordBytes));
    this.view = new DataView(this.buf.buffer);
    this.tmpDir = tempDir(outDir);
    rmSync(this.tmpDir, { recursive: true, force: true });
    mkdirSync(this.tmpDir, { recursive: true });
    this.fd = openSync(join(this.tmpDir, "rows.bin"), "w+");
    if (withSide) this.sideFd = openSync(join(this.tmpDir, "side.jsonl"), "w+");
  }

  add(row: Row, side?: unknown): void {
    if (this.used + this.recordBytes > this.buf.length) this.spill();
    const dv = this.view;
    let at = this.used;
    this.keys.forEach((k, i) => {
      const v = row[k.name];
      const w = DTYPE_BYTES[k.dtype];
      const n = this.sizes[i]! / w;
      if (!v || v.length !== n) throw new Error(`row_store: key ${k.name} needs ${n} values, got ${v?.length}`);
      for (let j = 0; j < n; j++, at += w) {
        const x = v[j]!;
        switch (k.dtype) {
          case "I32":
            dv.setInt32(at, x, true);
            break;
          case "U32":
            dv.setUint32(at, x, true);
            break;
          case "F32":
            dv.setFloat32(at, x, true);
            break;
          case "U8":
          case "BOOL":
            dv.setUint8(at, x);
            break;
          case "I16":
            dv.setInt16(at, x, true);
            break;
          case "U16":
            dv.setUint16(at, x, true);
            break;
          default:
            throw new Error(`row_store: dtype ${k.dtype} is not supported for rows`);
        }
      }
    });
    this.used = at;
    if (this.sideFd !== null) {
      const line = Buffer.from(JSON.stringify(side ?? {}) + "\n");
      writeSync(this.sideFd, line);
      this.sideOffsets.push(this.sideAt);
      this.sideAt += line.length;
    }
    this.rows++;
  }

  private spill(): void {
    if (this.used) writeSync(this.fd, this.buf, 0, this.used);
    this.used = 0;
  }

  /** Abandon: remove the temporary directory; nothing appears at outDir. */
  abort(): void {
    try {
      closeSync(this.fd);
    } catch {}
    if (this.sideFd !== null)
      try {
        closeSync(this.sideFd);
      } catch {}
    rmSync(this.tmpDir, { recursive: true, force: true });
  }

  finish(o: FinishOpts): { train: Split; val: Split } {
    this.spill();
    const n = this.rows;
    const perm = new Uint32Array(n);
    for (let i = 0; i < n; i++) perm[i] = i;
    new Rng(o.seed).shuffle(perm);
    let nVal = Math.round(n * o.valFraction);
    if (o.valFraction > 0 && nVal === 0 && n > 1) nVal = 1;
    const shardRows = Math.max(1, o.shardRows ?? Math.floor((64 << 20) / Math.max(1, this.recordBytes)));
    const val = this.writeSplit("val", perm.subarray(0, nVal), shardRows);
    const train = this.writeSplit("train", perm.subarray(nVal), shardRows);
    const manifest = {
      ...o.manifest,
      keys: Object.fromEntries(this.keys.map((k) => [k.name, { dtype: k.dtype, shape: ["rows", ...k.shape] }])),
      rows: { train: train.rows, val: val.rows },
      shards: [
        ...train.shards.map((s) => ({ split: "train", ...s })),
        ...val.shards.map((s) => ({ split: "val", ...s })),
      ],
      seed: o.seed,
      val_fraction: o.valFraction,
    };
    writeFileSync(join(this.tmpDir, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
    closeSync(this.fd);
    rmSync(join(this.tmpDir, "rows.bin"));
    if (this.sideFd !== null) {
      closeSync(this.sideFd);
      rmSync(join(this.tmpDir, "side.jsonl"));
    }
    swapIn(this.tmpDir, this.outDir, this.policy);
    return { train, val };
  }

  private writeSplit(split: string, rows: Uint32Array, shardRows: number): Split {
    const shards: Split["shards"] = [];
    const rec = new Uint8Array(this.recordBytes);
    // one set of shard buffers, reused: typed-array memory lives outside the JS heap, so shards
    // allocated afresh would pile up faster than the GC notices
    const cap = Math.min(shardRows, rows.length);
    const bufs = this.keys.map((_, i) => new Uint8Array(cap * this.sizes[i]!));
    for (let s = 0; s * shardRows < rows.length; s++) {
      const ids = rows.subarray(s * shardRows, Math.min(rows.length, (s + 1) * shardRows));
      const m = ids.length;
      const data = bufs.map((b, i) => b.subarray(0, m * this.sizes[i]!));
      const side: string[] = [];
      for (let r = 0; r < m; r++) {
        readSync(this.fd, rec, 0, this.recordBytes, ids[r]! * this.recordBytes);
        let at = 0;
        this.keys.forEach((_, i) => {
          data[i]!.set(rec.subarray(at, at + this.sizes[i]!), r * this.sizes[i]!);
          at += this.sizes[i]!;
        });
        if (this.sideFd !== null) side.push(this.readSide(ids[r]!));
      }
      const file = `${split}-${String(s).padStart(5, "0")}.safetensors`;
      const tensors = Object.fromEntries(
        this.keys.map((k, i) => [k.name, { dtype: k.dtype, shape: [m, ...k.shape], data: data[i]! }]),
      );
      const sum = writeSafetensors(join(this.tmpDir, file), tensors, { format: "bunlm-shard", split, rows: String(m) });
      const entry: Split["shards"][number] = { file, rows: m, ...sum };
      if (this.sideFd !== null) {
        entry.side = `${split}-${String(s).padStart(5, "0")}.jsonl`;
        const sideSum = writeFileAtomic(join(this.tmpDir, entry.side), side.join(""));
        entry.side_bytes = sideSum.bytes;
        entry.side_crc32 = sideSum.crc32;
      }
      shards.push(entry);
    }
    return { rows: rows.length, shards };
  }

  private readSide(row: number): string {
    const start = this.sideOffsets[row]!;
    const end = row + 1 < this.sideOffsets.length ? this.sideOffsets[row + 1]! : this.sideAt;
    const b = Buffer.alloc(end - start);
    readSync(this.sideFd!, b, 0, b.length, start);
    return b.toString("utf8");
  }
}
