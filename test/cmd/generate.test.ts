// generate end to end: a Hugging Face-layout checkpoint with --prompt-ids, a JSONL of prompts, text
// prompts and chat mode with a tokenizer, and the argument errors.
import { beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initGpu } from "../../lib/gpu/index.ts";
import { parseModelConfig } from "../../lib/model/config.ts";
import { initParams } from "../../lib/model/params.ts";
import { saveModel } from "../../lib/model/checkpoint.ts";
import { trainTokenizer } from "../../lib/tokenizer/train.ts";
import { readDocs } from "../../lib/io/readers.ts";
import { Tokenizer } from "../../lib/tokenizer/tokenizer.ts";

const root = join(import.meta.dir, "..", "..");
const hf = join(root, "test", "reference", "fixtures", "hf-llama");
const tmp = mkdtempSync(join(tmpdir(), "bunlm-gen-"));
let tokDir = "",
  modelDir = "";

function run(args: string[]) {
  const p = Bun.spawnSync([process.execPath, join(root, "cmd", "generate.ts"), ...args], { cwd: tmp });
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
}

beforeAll(async () => {
  await initGpu();
  tokDir = join(tmp, "tok");
  await trainTokenizer(readDocs([join(root, "examples", "data", "bilingual.txt")], { lines: true }), tokDir, {
    vocabSize: 300,
    minFrequency: 1,
  });
  modelDir = join(tmp, "model");
  const c = parseModelConfig({
    vocab_size: 300,
    hidden_size: 32,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    intermediate_size: 64,
    tie_word_embeddings: true,
    max_position_embeddings: 128,
  });
  await saveModel(modelDir, c, initParams(c, 1));
});

describe("generate command", () => {
  test("--prompt-ids, greedy: PyTorch's tokens, with log-probs", () => {
    const want = JSON.parse(readFileSync(join(hf, "expected_greedy.json"), "utf8"));
    const r = run([
      "--ckpt",
      hf,
      "--prompt-ids",
      want.prompt.join(","),
      "--max-new-tokens",
      "12",
      "--temperature",
      "0",
      "--logprobs",
    ]);
    expect(r.code).toBe(0);
    const o = JSON.parse(r.out);
    expect(o.ids).toEqual(want.ids.slice(0, 12));
    expect(o.prompt).toEqual(want.prompt);
    expect(o.finish_reason).toBe("length");
    expect(o.logprobs).toHaveLength(12);
    expect(o.logprobs.every((x: number) => x < 0)).toBe(true);
    expect(o.text).toBeUndefined();
    expect(o.tokens_per_s).toBeGreaterThan(0);
  });

  test("--prompts FILE: one line per prompt, extra fields kept; the same seed gives the same sample", () => {
    const f = join(tmp, "p.jsonl");
    writeFileSync(
      f,
      JSON.stringify({ prompt_ids: [1, 2, 3], id: "a" }) + "\n" + JSON.stringify({ prompt_ids: [4], id: "b" }) + "\n",
    );
    const args = ["--ckpt", hf, "--prompts", f, "--max-new-tokens", "5", "--temperature", "1", "--seed", "11"];
    const r1 = run(args),
      r2 = run(args);
    expect(r1.code).toBe(0);
    const lines = r1.out
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(lines.map((l) => l.id)).toEqual(["a", "b"]);
    const ids = (out: string) =>
      out
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l).ids);
    expect(ids(r2.out)).toEqual(ids(r1.out));
  });

  test("text prompt and chat mode with a tokenizer", () => {
    const r = run([
      "--ckpt",
      modelDir,
      "--tokenizer",
      tokDir,
      "--prompt",
      "The river",
      "--max-new-tokens",
      "6",
      "--temperature",
      "0",
    ]);
    expect(r.code).toBe(0);
    const o = JSON.parse(r.out);
    expect(o.prompt).toBe("The river");
    expect(typeof o.text).toBe("string");
    const tok = Tokenizer.fromDir(tokDir);
    expect(o.text).toBe(
      tok.decode(
        o.ids.filter((i: number) => !tok.isSpecial(i)),
        true,
      ),
    );
    const c = run([
      "--ckpt",
      modelDir,
      "--tokenizer",
      tokDir,
      "--prompt",
      "hi",
      "--chat",
      "--max-new-tokens",
      "4",
      "--temperature",
      "0",
    ]);
    expect(c.code).toBe(0);
    const chat = JSON.parse(c.out);
    expect(chat.ids.length).toBeLessThanOrEqual(4);
    if (chat.finish_reason === "stop") expect(chat.ids[chat.ids.length - 1]).toBe(tok.specialId("<|im_end|>"));
    else expect(chat.ids).toHaveLength(4);
  });

  const errors: [string, string[], RegExp][] = [
    ["no prompt", ["--ckpt", hf], /give exactly one of --prompt, --prompt-ids, --prompts/],
    ["a text prompt without a tokenizer", ["--ckpt", hf, "--prompt", "hi"], /need a tokenizer/],
    ["a bad temperature", ["--ckpt", hf, "--prompt-ids", "1", "--temperature", "-1"], /temperature: must be >= 0/],
    ["a directory that is not a model", ["--ckpt", tmp, "--prompt-ids", "1"], /config\.json: no config\.json/],
    [
      "an id outside the vocabulary",
      ["--ckpt", hf, "--prompt-ids", "1,500"],
      /token id 500 is outside the model's vocabulary \(97\)/,
    ],
  ];
  for (const [name, args, re] of errors) {
    test(`error: ${name}`, () => {
      const r = run(args);
      expect(r.code).toBe(1);
      expect(r.err.trim().split("\n").pop()).toMatch(re);
    });
  }
});
