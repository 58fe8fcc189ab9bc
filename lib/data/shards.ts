// Reading a packed dataset: manifest.json plus its safetensors shards, checked against each other.
// Nothing in the directory is trusted: the manifest goes through a schema, every name it lists must
// be a plain file name beside it, every file must be a regular file, every shard's tensors must have
// the shapes that `pack TYPE --seq-len L` writes, and (scanShard, one pass over each shard) its
// CRC-32 must match the manifest's and every value must lie in its key's range — a token id outside
// the vocabulary would index past the embedding table instead of failing.
import { fstatSync, readSync } from "node:fs";
import { join } from "node:path";
import * as v from "valibot";
import {
  DTYPE_BYTES,
  readHeader,
  readTensor,
  type DType,
  type SafetensorsHeader,
  type TensorData,
} from "../io/safetensors.ts";
import { InputError } from "../base/errors.ts";
import { Crc32, type FileSum } from "../io/checksum.ts";
import { plainName, readJsonObject, readRegular, verifyFile } from "../io/files.ts";
import type { KeySpec } from "./row_store.ts";
import { seqKeys } from "./pack_seq.ts";
import { sftKeys } from "./pack_sft.ts";
import { dpoKeys } from "./pack_dpo.ts";
import { grpoKeys } from "./pack_grpo.ts";
import { sameShape } from "../base/shape.ts";

const int = (min: number) =>
  v.pipe(
    v.number("expected a number"),
    v.integer("expected a whole number"),
    v.minValue(min, `must be at least ${min}`),
  );
const crc = v.pipe(v.string("expected a string"), v.regex(/^[0-9a-f]{8}$/, "expected 8 hex digits"));

const ShardEntrySchema = v.object({
  split: v.picklist(["train", "val"], "expected train or val"),
  file: v.string("expected a file name"),
  rows: int(1),
  bytes: v.optional(int(0)),
  crc32: v.optional(crc),
  side: v.optional(v.string("expected a file name")),
  side_bytes: v.optional(int(0)),
  side_crc32: v.optional(crc),
});

const ManifestSchema = v.looseObject({
  format: v.literal("bunlm-shards", 'expected "bunlm-shards" (not a manifest written by `pack`)'),
  version: v.literal(1, "expected 1 (written by another version of bunlm? pack again)"),
  type: v.picklist(["seq", "sft", "dpo", "grpo"], "expected seq, sft, dpo or grpo"),
  seq_len: int(2),
  keys: v.record(
    v.string(),
    v.object({
      dtype: v.string("expected a dtype"),
      shape: v.tupleWithRest(
        [v.literal("rows", 'expected "rows" first')],
        v.number("expected a number"),
        'expected a list ["rows", ...]',
      ),
    }),
  ),
  rows: v.object({ train: int(0), val: int(0) }),
  shards: v.array(ShardEntrySchema, "expected a list of shards"),
  tokenizer: v.looseObject({
    path: v.string("expected a path"),
    hash: v.string("expected a string"),
    vocab_size: int(1),
    eos_id: int(0),
    pad_id: int(0),
  }),
  seed: v.optional(v.number()),
  group_size: v.optional(int(0)),
  response_len: v.optional(v.nullable(int(1))),
});

export type Manifest = v.InferOutput<typeof ManifestSchema>;
export type ShardEntry = Manifest["shards"][number];

/** The keys `pack TYPE` writes for this manifest's sizes: the shapes every shard must have. */
export function expectedKeys(m: Manifest, file = "manifest.json"): KeySpec[] {
  const L = m.seq_len;
  switch (m.type) {
    case "seq":
      return seqKeys(L, "position_ids" in m.keys);
    case "sft":
      return sftKeys(L);
    case "dpo":
      return dpoKeys(L);
    case "grpo": {
      if (!("responses" in m.keys)) return grpoKeys(L, 0, 0);
      if (!m.group_size || !m.response_len)
        throw new InputError(`${file}: an offline grpo dataset (with responses) needs group_size and response_len`);
      return grpoKeys(L, m.group_size, m.response_len);
    }
  }
}

const fmt = (dtype: string, shape: readonly unknown[]) => `${dtype}[${shape.join(",")}]`;

export function readManifest(dir: string): Manifest {
  const file = join(dir, "manifest.json");
  const raw = readJsonObject(file, "no manifest here (not a directory made by `pack`)");
  const r = v.safeParse(ManifestSchema, raw);
  if (!r.success) {
    const issue = r.issues[0]!;
    const path = issue.path?.map((p: any) => p.key).join(".") ?? "";
    throw new InputError(`${file}: ${path ? `${path}: ` : ""}${issue.message}`);
  }
  const m = r.output;
  const t = m.tokenizer;
  if (t.eos_id >= t.vocab_size || t.pad_id >= t.vocab_size)
    throw new InputError(
      `${file}: tokenizer: eos_id ${t.eos_id} and pad_id ${t.pad_id} must lie below vocab_size ${t.vocab_size}`,
    );
  const want = expectedKeys(m, file);
  const names = Object.keys(m.keys).sort(),
    wantNames = want.map((k) => k.name).sort();
  if (!sameShape(names, wantNames))
    throw new InputError(
      `${file}: keys: lists ${names.join(", ")}, but \`pack ${m.type}\` writes ${wantNames.join(", ")}`,
    );
  for (const k of want)
    if (m.keys[k.name]!.dtype !== k.dtype)
      throw new InputError(
        `${file}: keys.${k.name}: dtype ${m.keys[k.name]!.dtype}, but \`pack ${m.type}\` writes ${k.dtype}`,
      );
  const seen = new Set<string>();
  const count = { train: 0, val: 0 };
  m.shards.forEach((s, i) => {
    for (const name of [s.file, ...(s.side === undefined ? [] : [s.side])]) {
      plainName(name, `${file}: shards.${i}`);
      if (seen.has(name)) throw new InputError(`${file}: shards.${i}: lists ${name} a second time`);
      seen.add(name);
    }
    if (
      (s.bytes === undefined) !== (s.crc32 === undefined) ||
      (s.side_bytes === undefined) !== (s.side_crc32 === undefined)
    )
      throw new InputError(`${file}: shards.${i}: bytes and crc32 come together (one of them is missing)`);
    if ((m.type === "grpo") !== (s.side !== undefined))
      throw new InputError(
        `${file}: shards.${i}: ${m.type === "grpo" ? "a grpo shard needs its side file" : `a ${m.type} shard has no side file`}`,
      );
    count[s.split] += s.rows;
  });
  for (const split of ["train", "val"] as const)
    if (count[split] !== m.rows[split])
      throw new InputError(
        `${file}: rows.${split} is ${m.rows[split]}, but its ${split} shards hold ${count[split]} rows`,
      );
  return m;
}

export interface Shard {
  entry: ShardEntry;
  header: SafetensorsHeader;
}

function checkShard(dir: string, m: Manifest, entry: ShardEntry, want: KeySpec[]): SafetensorsHeader {
  const path = join(dir, entry.file);
  const header = readHeader(path);
  for (const k of want) {
    const t = header.tensors.find((x) => x.name === k.name);
    if (!t) throw new InputError(`${path}: no tensor "${k.name}" that manifest.json lists`);
    const shape = [entry.rows, ...k.shape];
    if (t.dtype !== k.dtype || !sameShape(t.shape, shape))
      throw new InputError(
        `${path}: ${k.name} is ${fmt(t.dtype, t.shape)}, but manifest.json (seq_len ${m.seq_len}, ${entry.rows} rows) says ${fmt(k.dtype, shape)}`,
      );
  }
  if (header.tensors.length !== want.length)
    throw new InputError(
      `${path}: holds tensors that manifest.json does not list (${header.tensors.map((t) => t.name).join(", ")})`,
    );
  return header;
}

/** Open every shard of a split and check its tensors against the manifest's keys and row counts. */
export function openShards(dir: string, split: "train" | "val" = "train"): { manifest: Manifest; shards: Shard[] } {
  const manifest = readManifest(dir);
  const want = expectedKeys(manifest);
  const shards = manifest.shards
    .filter((s) => s.split === split)
    .map((entry) => {
      try {
        return { entry, header: checkShard(dir, manifest, entry, want) };
      } catch (e) {
        // a damaged file explains itself better by its checksum than by the header it garbled
        if (entry.crc32 !== undefined) verifyFile(join(dir, entry.file), entry as FileSum, "manifest.json");
        throw e;
      }
    });
  for (const k of want) {
    const shape = ["rows", ...k.shape];
    if (!sameShape(manifest.keys[k.name]!.shape, shape))
      throw new InputError(
        `${join(dir, "manifest.json")}: keys.${k.name}: shape [${manifest.keys[k.name]!.shape}], but seq_len ${manifest.seq_len} means [${shape}]`,
      );
  }
  return { manifest, shards };
}

type Rule = "token" | "position" | "mask" | "reward";
const RULES = {
  input_ids: "token",
  target_ids: "token",
  chosen: "token",
  rejected: "token",
  prompts: "token",
  responses: "token",
  position_ids: "position",
  loss_mask: "mask",
  chosen_mask: "mask",
  rejected_mask: "mask",
  prompt_mask: "mask",
  masks: "mask",
  rewards: "reward",
} satisfies Record<string, Rule>;

const CHUNK = 8 << 20; // a multiple of every element size, so no element straddles two chunks

/**
 * Read one shard front to back through `fd`: its size and CRC-32 against the manifest's entry (when
 * it has them: manifests from before sums load unchecked), and every value against its key's range:
 * token ids in [0, tokenizer vocab_size) (pack pads with the real <|pad|> token and marks untrained
 * targets in loss_mask, so no ignore index appears in the data), position_ids in [0, seq_len), masks
 * 0 or 1, rewards finite. Returns the number of ones of each mask key.
 */
export function scanShard(fd: number, shard: Shard, m: Manifest): Record<string, number> {
  const { entry, header } = shard;
  const path = header.path;
  const size = fstatSync(fd).size;
  if (entry.bytes !== undefined && size !== entry.bytes)
    throw new InputError(
      `${path}: ${size} bytes, but manifest.json recorded ${entry.bytes} (truncated or replaced since it was packed)`,
    );
  const sum = new Crc32();
  const buf = new Uint8Array(Math.min(CHUNK, Math.max(8, size)));
  const ones: Record<string, number> = {};
  let bad: string | null = null; // the first bad value; reported only if the checksum holds (else it is the damage)
  const read = (at: number, n: number) => {
    const b = buf.subarray(0, n);
    for (let got = 0; got < n; ) {
      const k = readSync(fd, b, got, n - got, at + got);
      if (k <= 0) throw new InputError(`${path}: ended at byte ${at + got} while reading (truncated while in use?)`);
      got += k;
    }
    sum.update(b);
    return b;
  };
  const tensors = [...header.tensors].sort((a, b) => a.begin - b.begin);
  let at = 0;
  const skip = (to: number) => {
    for (; at < to; ) {
      const n = Math.min(buf.length, to - at);
      read(at, n);
      at += n;
    }
  };
  for (const t of tensors) {
    skip(t.begin);
    const rule: Rule = RULES[t.name as keyof typeof RULES];
    const perRow = t.shape.slice(1).reduce((a, b) => a * b, 1);
    let count = 0,
      index = 0;
    for (; at < t.end; ) {
      const b = read(at, Math.min(buf.length, t.end - at));
      at += b.length;
      if (bad !== null) continue;
      const r = checkValues(rule, t.dtype, b, m, index);
      if (typeof r === "number") count += r;
      else bad = `${path}: ${t.name} row ${Math.floor(r.at / perRow)} ${r.what}`;
      index += b.length / DTYPE_BYTES[t.dtype];
    }
    if (rule === "mask") ones[t.name] = count;
  }
  skip(size);
  if (entry.crc32 !== undefined && sum.sum().crc32 !== entry.crc32)
    throw new InputError(
      `${path}: CRC-32 ${sum.sum().crc32} differs from ${entry.crc32} that manifest.json recorded (the file is corrupted or was replaced)`,
    );
  if (bad !== null) throw new InputError(bad);
  return ones;
}

/** A chunk's values against `rule`: the count of ones (masks), or the first bad value. */
function checkValues(
  rule: Rule,
  dtype: DType,
  b: Uint8Array,
  m: Manifest,
  base: number,
): number | { at: number; what: string } {
  if (rule === "mask") {
    let c = 0;
    for (let i = 0; i < b.length; i++) {
      const x = b[i]!;
      if (x > 1) return { at: base + i, what: `holds ${x}; a mask holds only 0 or 1` };
      c += x;
    }
    return c;
  }
  if (rule === "reward") {
    const a = new Float32Array(b.buffer, b.byteOffset, b.length / 4);
    for (let i = 0; i < a.length; i++)
      if (!Number.isFinite(a[i]!)) return { at: base + i, what: `holds ${a[i]}; rewards must be finite numbers` };
    return 0;
  }
  if (dtype !== "I32") throw new Error(`shards: ${rule} key with dtype ${dtype}`); // readManifest pinned the dtypes
  const a = new Int32Array(b.buffer, b.byteOffset, b.length / 4);
  const hi = rule === "token" ? m.tokenizer.vocab_size : m.seq_len;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    // one unsigned comparison catches negatives too
    if (x >>> 0 >= hi)
      return rule === "token"
        ? {
            at: base + i,
            what: `holds token id ${x}, outside the vocabulary [0, ${hi}) of the tokenizer this data was packed with`,
          }
        : { at: base + i, what: `holds position ${x}, outside [0, ${hi}) for seq_len ${hi}` };
  }
  return 0;
}

/** All of one key's rows of a split, concatenated (for tests and small datasets). */
export function readKey(dir: string, split: "train" | "val", key: string): TensorData {
  const { shards, manifest } = openShards(dir, split);
  const spec = manifest.keys[key];
  if (!spec) throw new InputError(`${dir}: no key "${key}" (keys: ${Object.keys(manifest.keys).join(", ")})`);
  const parts = shards.map((s) => readTensor(s.header, key));
  const rows = parts.reduce((n, p) => n + p.shape[0]!, 0);
  const total = parts.reduce((n, p) => n + p.data.byteLength, 0);
  const buf = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    buf.set(new Uint8Array(p.data.buffer, p.data.byteOffset, p.data.byteLength), at);
    at += p.data.byteLength;
  }
  const dtype = spec.dtype as TensorData["dtype"];
  const Ctor: any = { I32: Int32Array, U8: Uint8Array, F32: Float32Array }[dtype as string] ?? Uint8Array;
  return { dtype, shape: [rows, ...(spec.shape.slice(1) as number[])], data: new Ctor(buf.buffer) };
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** grpo's side records of a split (one JSON object per row, in shard order), checked against their sums. */
export function readSide(dir: string, split: "train" | "val"): Record<string, unknown>[] {
  const { shards } = openShards(dir, split);
  return shards.flatMap(({ entry }) => {
    if (entry.side === undefined) return [];
    const path = join(dir, entry.side);
    const buf = readRegular(path);
    if (entry.side_crc32 !== undefined) {
      const got = new Crc32().update(buf).sum();
      if (got.bytes !== entry.side_bytes)
        throw new InputError(
          `${path}: ${got.bytes} bytes, but manifest.json recorded ${entry.side_bytes} (truncated or replaced since it was packed)`,
        );
      if (got.crc32 !== entry.side_crc32)
        throw new InputError(
          `${path}: CRC-32 ${got.crc32} differs from ${entry.side_crc32} that manifest.json recorded (the file is corrupted or was replaced)`,
        );
    }
    let text: string;
    try {
      text = utf8.decode(buf);
    } catch {
      throw new InputError(`${path}: not UTF-8 text`);
    }
    const lines = text.split("\n").filter(Boolean);
    if (lines.length !== entry.rows)
      throw new InputError(`${path}: ${lines.length} records, but its shard ${entry.file} holds ${entry.rows} rows`);
    return lines.map((l, i) => {
      let x: unknown;
      try {
        x = JSON.parse(l);
      } catch {
        throw new InputError(`${path}:${i + 1}: not valid JSON`);
      }
      if (!x || typeof x !== "object" || Array.isArray(x))
        throw new InputError(`${path}:${i + 1}: expected a JSON object`);
      return x as Record<string, unknown>;
    });
  });
}
