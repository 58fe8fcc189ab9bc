// The ids of a tokenizer's special tokens, read from its files without building the encoder: what a
// checkpoint's generation_config.json is written from at every save. tokenizer.json's added_tokens
// map contents to ids; tokenizer_config.json names the bos, eos and pad tokens (a string, or an
// AddedToken object with "content", as transformers writes either).
import { existsSync } from "node:fs";
import { join } from "node:path";
import { readJsonObject } from "../io/files.ts";

export interface SpecialIds {
  /** content → id of every added token */
  added: Map<string, number>;
  bos?: number;
  eos?: number;
  pad?: number;
}

/** A special token as tokenizer_config.json names it: a string, or an AddedToken object with "content". */
export function tokenContent(x: unknown): string | undefined {
  if (typeof x === "string") return x;
  const c = (x as { content?: unknown } | null | undefined)?.content;
  return typeof c === "string" ? c : undefined;
}

export function readSpecialIds(dir: string): SpecialIds {
  const added = new Map<string, number>();
  const list = readJsonObject(join(dir, "tokenizer.json")).added_tokens;
  if (Array.isArray(list))
    for (const t of list)
      if (typeof t?.content === "string" && Number.isInteger(t?.id) && t.id >= 0) added.set(t.content, t.id);
  const out: SpecialIds = { added };
  const cfgFile = join(dir, "tokenizer_config.json");
  if (!existsSync(cfgFile)) return out;
  const cfg = readJsonObject(cfgFile);
  for (const k of ["bos", "eos", "pad"] as const) {
    const content = tokenContent(cfg[`${k}_token`]);
    const id = content === undefined ? undefined : added.get(content);
    if (id !== undefined) out[k] = id;
  }
  return out;
}
