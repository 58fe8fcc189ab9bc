// What the integrity checks cost, in ms per GB, beside what the same bytes cost to write and read
// without them (the reference, measured in the same run because these machines are noisy):
//   crc          the CRC-32 every checkpoint and shard write now computes, beside the atomic write itself
//   verify       fileSum (read + CRC-32) on a warm page cache vs a plain read
//   finite       the NaN/Inf scan of f32 weights (before every save, after every load)
//   shard_scan   opening a packed dataset (CRC-32 + range check of every value) vs opening without the scan
// bun bench/integrity.ts [--mb 256]   prints one JSON line
import { closeSync, fstatSync, mkdtempSync, openSync, readSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileSum, writeFileAtomic } from "../lib/io/files.ts";
import { Crc32 } from "../lib/io/checksum.ts";
import { countNonFinite } from "../lib/model/checkpoint.ts";
import { ShardDataset } from "../lib/train/dataset.ts";
import { readDocs } from "../lib/io/readers.ts";
import { trainTokenizer } from "../lib/tokenizer/train.ts";

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const MB = arg("--mb", 256);
const dir = mkdtempSync(join(tmpdir(), "bunlm-bench-integrity-"));
const GB = 1 << 30;

function best(f: () => void, reps = 3): number {
  let t = Infinity;
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    f();
    t = Math.min(t, performance.now() - t0);
  }
  return t;
}
const perGB = (ms: number, bytes: number) => +((ms * GB) / bytes).toFixed(1);

function plainRead(path: string): void {
  const fd = openSync(path, "r");
  const size = fstatSync(fd).size,
    buf = new Uint8Array(8 << 20);
  for (let at = 0; at < size; ) at += readSync(fd, buf, 0, Math.min(buf.length, size - at), at);
  closeSync(fd);
}

try {
  const bytes = MB << 20;
  const data = new Float32Array(bytes / 4);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(i) * 0.02;
  const u8 = new Uint8Array(data.buffer);
  const file = join(dir, "w.bin");
  // what a write adds is the CRC-32 of what it writes; the write itself is shown for scale (its time
  // is the page cache's writeback, which varies several-fold between runs on this machine)
  const crc = best(() => new Crc32().update(u8).sum());
  const write = best(() => writeFileAtomic(file, u8));
  const readPlain = best(() => plainRead(file));
  const verify = best(() => fileSum(file));
  const finite = best(() => countNonFinite(data));

  // a packed seq dataset of about MB/2 megabytes of ids (pack runs as a user runs it)
  const root = join(import.meta.dir, "..");
  const ids = join(dir, "ids.jsonl"),
    tok = join(dir, "tok"),
    seq = join(dir, "seq");
  const sh = (args: string[]) => {
    const p = Bun.spawnSync([process.execPath, ...args], { cwd: root });
    if (p.exitCode !== 0) throw new Error(p.stderr.toString());
  };
  sh(["test/data/gen_ids.ts", ids, String(Math.round(MB / 2))]);
  const text = join(root, "examples", "data", "bilingual.txt");
  await trainTokenizer(readDocs([text], { lines: true }), tok, { vocabSize: 300, minFrequency: 1 });
  sh(["cmd/pack.ts", "seq", "--tokenizer", tok, "--seq-len", "1024", "--out", seq, ids]);
  let shardBytes = 0;
  const open = (scan: boolean) => () => {
    const d = new ShardDataset(seq, "train", { scan });
    shardBytes = d.manifest.shards.reduce((n: number, s: any) => n + (s.bytes ?? 0), 0);
    d.close();
  };
  const shardPlain = best(open(false));
  const shardScan = best(open(true));

  console.log(
    JSON.stringify({
      bench: "integrity",
      mb: MB,
      crc_ms_per_gb: perGB(crc, bytes),
      write_ms_per_gb: perGB(write, bytes),
      verify_ms_per_gb: perGB(verify, bytes),
      read_plain_ms_per_gb: perGB(readPlain, bytes),
      finite_scan_ms_per_gb: perGB(finite, bytes),
      shard_scan_ms_per_gb: perGB(shardScan, shardBytes),
      shard_open_plain_ms_per_gb: perGB(shardPlain, shardBytes),
      shard_gb: +(shardBytes / GB).toFixed(3),
    }),
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
