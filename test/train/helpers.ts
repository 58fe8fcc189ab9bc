// Shared set-up for the training tests: a tokenizer trained on the example text, packed shards, and
// a runner for the training commands.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const root = join(import.meta.dir, "..", "..");
export const bun = process.execPath;

export function tmp(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `bunlm-${prefix}-`));
}

export function sh(args: string[], cwd = root) {
  const p = Bun.spawnSync([bun, ...args], { cwd, env: { ...process.env } });
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
}

export function events(out: string): any[] {
  return out
    .trim()
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l));
}

export const TINY_MODEL = {
  hidden_size: 32,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  intermediate_size: 64,
  tie_word_embeddings: true,
};

/** tokenizer + seq shards (L = 16) of the example text, and a tiny model config file */
export function seqData(dir: string, extra: string[] = []): { tok: string; data: string; model: string } {
  const tok = join(dir, "tok"),
    data = join(dir, "seq"),
    model = join(dir, "model.json");
  const text = join(root, "examples", "data", "bilingual.txt");
  let r = sh([
    "cmd/tokenize.ts",
    "train",
    "--vocab-size",
    "400",
    "--min-frequency",
    "1",
    "--out",
    tok,
    "--lines",
    text,
  ]);
  if (r.code !== 0) throw new Error(r.err);
  r = sh(["cmd/pack.ts", "seq", "--tokenizer", tok, "--seq-len", "16", "--out", data, "--lines", ...extra, text]);
  if (r.code !== 0) throw new Error(r.err);
  writeFileSync(model, JSON.stringify(TINY_MODEL));
  return { tok, data, model };
}
