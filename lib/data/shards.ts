// Reading a packed dataset: manifest.json plus its safetensors shards, checked against each other.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { readHeader, readTensor, type SafetensorsHeader, type TensorData } from "../io/safetensors.ts";
import { InputError } from "../io/errors.ts";

export interface ShardEntry {
  split: "train" | "val";
  file: string;
  rows: number;
  side?: string;
}

export interface Manifest {
  format: "bunlm-shards";
  version: number;
  type: "seq" | "sft" | "dpo" | "grpo";
  seq_len: number;
  keys: Record<string, { dtype: string; shape: (number | "rows")[] }>;
  rows: { train: number; val: number };
  shards: ShardEntry[];
  tokenizer: { path: string; hash: string; vocab_size: number; eos_id: number; pad_id: number };
  seed: number;
  [k: string]: unknown;
}

export function readManifest(dir: string): Manifest {
  const file = join(dir, "manifest.json");
  let m: Manifest;
  try {
    m = JSON.parse(readFileSync(file, "utf8"));
  } catch (e: any) {
    throw new InputError(`${file}: ${e.code === "ENOENT" ? "no manifest here (not a directory made by `pack`)" : `not valid JSON (${e.message})`}`);
  }
  if (m.format !== "bunlm-shards" || !Array.isArray(m.shards)) throw new InputError(`${file}: not a bunlm shard manifest`);
  return m;
}

export interface Shard {
  entry: ShardEntry;
  header: SafetensorsHeader;
}

/** Open every shard of a split and check its tensors against the manifest's keys and row counts. */
export function openShards(dir: string, split: "train" | "val" = "train"): { manifest: Manifest; shards: Shard[] } {
  const manifest = readManifest(dir);
  const shards = manifest.shards.filter((s) => s.split === split).map((entry) => {
    const header = readHeader(join(dir, entry.file));
    for (const [k, spec] of Object.entries(manifest.keys)) {
      const t = header.tensors.find((x) => x.name === k);
      if (!t) throw new InputError(`${header.path}: no tensor "${k}" that the manifest lists`);
      const want = [entry.rows, ...spec.shape.slice(1)];
      if (t.dtype !== spec.dtype || t.shape.length !== want.length || t.shape.some((d, i) => d !== want[i]))
        throw new InputError(`${header.path}: "${k}" is ${t.dtype}[${t.shape}], the manifest says ${spec.dtype}[${want}]`);
    }
    return { entry, header };
  });
  return { manifest, shards };
}

/** All of one key's rows of a split, concatenated (for tests and small datasets). */
export function readKey(dir: string, split: "train" | "val", key: string): TensorData {
  const { shards, manifest } = openShards(dir, split);
  const parts = shards.map((s) => readTensor(s.header, key));
  const spec = manifest.keys[key];
  if (!spec) throw new InputError(`${dir}: no key "${key}" (keys: ${Object.keys(manifest.keys).join(", ")})`);
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

export function readSide(dir: string, split: "train" | "val"): unknown[] {
  const { shards } = openShards(dir, split);
  return shards.flatMap((s) => (s.entry.side ? readFileSync(join(dir, s.entry.side), "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l)) : []));
}
