// What ckpt-inspect looks at: a checkpoint directory (model.safetensors + config.json [+ meta.json]),
// a shard directory (manifest.json + shards) or any .safetensors file — resolved to its safetensors
// files with headers validated, plus the JSON beside them.
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { readHeader, SafetensorsError, type SafetensorsHeader } from "./safetensors.ts";

export interface Target {
  kind: "checkpoint" | "shards" | "safetensors";
  path: string;
  files: SafetensorsHeader[];
  config?: unknown;
  meta?: any;
  manifest?: any;
}

function json(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new SafetensorsError(`${path}: not valid JSON (${(e as Error).message})`);
  }
}

export function resolveTarget(path: string): Target {
  let st;
  try {
    st = statSync(path);
  } catch {
    throw new SafetensorsError(`${path}: no such file or directory`);
  }
  if (st.isFile()) return { kind: "safetensors", path, files: [readHeader(path)] };
  if (existsSync(join(path, "model.safetensors"))) {
    const t: Target = { kind: "checkpoint", path, files: [readHeader(join(path, "model.safetensors"))] };
    if (existsSync(join(path, "config.json"))) t.config = json(join(path, "config.json"));
    if (existsSync(join(path, "meta.json"))) t.meta = json(join(path, "meta.json"));
    return t;
  }
  if (existsSync(join(path, "model.safetensors.index.json"))) {
    // a sharded Hugging Face checkpoint: every shard the index names
    const index: any = json(join(path, "model.safetensors.index.json"));
    const files = [...new Set(Object.values<string>(index?.weight_map ?? {}))];
    if (!files.length) throw new SafetensorsError(`${join(path, "model.safetensors.index.json")}: no "weight_map"`);
    const t: Target = { kind: "checkpoint", path, files: files.map((f) => readHeader(join(path, f))) };
    if (existsSync(join(path, "config.json"))) t.config = json(join(path, "config.json"));
    return t;
  }
  if (existsSync(join(path, "manifest.json"))) {
    const manifest: any = json(join(path, "manifest.json"));
    if (!Array.isArray(manifest?.shards)) throw new SafetensorsError(`${join(path, "manifest.json")}: not a shard manifest (no "shards" list)`);
    return { kind: "shards", path, manifest, files: manifest.shards.map((s: any) => readHeader(join(path, s.file))) };
  }
  throw new SafetensorsError(`${path}: no checkpoint (model.safetensors), shard manifest (manifest.json) or safetensors file here`);
}
