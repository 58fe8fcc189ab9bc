// What ckpt-inspect looks at: a checkpoint directory (model.safetensors + config.json [+ meta.json]),
// a shard directory (manifest.json + shards) or any .safetensors file — resolved to its safetensors
// files with headers validated, plus the JSON beside them. File names an index or a manifest lists
// must be plain names in the same directory, and only regular files are opened (files.ts).
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { readHeader, SafetensorsError, type SafetensorsHeader } from "./safetensors.ts";
import { plainName, readJson } from "./files.ts";

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
