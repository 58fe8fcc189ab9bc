// generate against checkpoints that load but cannot be trusted to generate: weights that are finite
// yet overflow the logits, a tokenizer other than the one the checkpoint records, and a vocabulary
// padded beyond the tokenizer (whose padding logits dominate). Each case runs as a user runs it.
import { beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { readHeader, readTensor, writeSafetensors, type TensorData } from "../../lib/io/safetensors.ts";
import { parseModelConfig, hfConfigJson } from "../../lib/model/config.ts";
import { paramShapes, normals } from "../../lib/model/params.ts";
import { Tokenizer } from "../../lib/tokenizer/tokenizer.ts";
import { Rng } from "../../lib/base/rng.ts";
import { fileSum } from "../../lib/io/files.ts";
import { removeCheckpoint } from "../../lib/train/checkpoint.ts";
import { sh } from "../train/helpers.ts";
import { run, expectRefusal, snapshot, expectUnchanged, tmp, seqData } from "./_helpers.ts";

const GEN = "cmd/generate.ts";
let dir = "",
  tokA = "",
  tokB = "",
  trained = "",
  bare = "",
  metaOnly = "",
  swapped = "",
  huge = "",
  padded = "",
  deadVocab = "";
let sizeA = 0;

function copyInto(src: string, dst: string, files: string[]): string {
  mkdirSync(dst, { recursive: true });
  for (const f of files) copyFileSync(join(src, f), join(dst, f));
  return dst;
}

/** A model directory written from host arrays (no GPU in the test process). */
function writeModel(
  out: string,
  raw: Record<string, unknown>,
  fill: (name: string, shape: number[]) => Float32Array,
): string {
  const c = parseModelConfig(raw);
  mkdirSync(out, { recursive: true });
  const tensors: Record<string, TensorData> = {};
  for (const [name, shape] of paramShapes(c)) tensors[name] = { dtype: "F32", shape, data: fill(name, shape) };
  writeSafetensors(join(out, "model.safetensors"), tensors, { format: "pt" });
  writeFileSync(join(out, "config.json"), JSON.stringify(hfConfigJson(c)));
  return out;
}

/**
 * A model whose layers add nothing, so the stream is the embedding, whose channel 0 is 1 for every
 * token: after the final norm that channel is about √C, and lm_head's column 0 sets each logit.
 * `head0(j)` is that column: the logit of token j is about √C·head0(j).
 */
function headModel(out: string, V: number, head0: (j: number) => number): string {
  const rng = new Rng(7);
  return writeModel(
    out,
    {
      vocab_size: V,
      hidden_size: 32,
      num_hidden_layers: 1,
      num_attention_heads: 2,
      intermediate_size: 64,
      max_position_embeddings: 64,
    },
    (name, shape) => {
      const n = shape.reduce((a, b) => a * b, 1);
      if (name.endsWith("layernorm.weight") || name === "model.norm.weight") return new Float32Array(n).fill(1);
      if (name.includes(".layers.")) return new Float32Array(n);
      const w = normals(rng, n, 0.02);
      const C = shape[1]!;
      for (let j = 0; j < shape[0]!; j++) w[j * C] = name === "lm_head.weight" ? head0(j) : 1;
      return w;
    },
  );
}

beforeAll(() => {
  dir = tmp("gen-hostile");
  const d = seqData(dir);
  tokA = d.tok;
  sizeA = Tokenizer.fromDir(tokA).size;
  tokB = join(dir, "tokB");
  let r = sh([
    "cmd/tokenize.ts",
    "train",
    "--vocab-size",
    "300",
    "--min-frequency",
    "1",
    "--out",
    tokB,
    "--lines",
    join("examples", "data", "bilingual.txt"),
  ]);
  if (r.code !== 0) throw new Error(r.err);
  r = sh([
    "cmd/pretrain.ts",
    "--data",
    d.data,
    "--out",
    join(dir, "pt"),
    "--model",
    d.model,
    "--max-steps",
    "2",
    "--batch-size",
    "2",
  ]);
  if (r.code !== 0) throw new Error(r.err);
  trained = join(dir, "pt", "step_000002");
  bare = copyInto(trained, join(dir, "bare"), ["config.json", "model.safetensors"]);
  metaOnly = copyInto(trained, join(dir, "meta-only"), ["config.json", "model.safetensors", "meta.json"]);
  swapped = copyInto(trained, join(dir, "swapped"), ["config.json", "model.safetensors", "meta.json"]);
  copyInto(tokB, swapped, ["tokenizer.json", "tokenizer_config.json"]);

  // the trained weights times 1e20: every one finite (loading accepts them), the logits overflow
  huge = join(dir, "huge");
  mkdirSync(huge);
  copyFileSync(join(trained, "config.json"), join(huge, "config.json"));
  const h = readHeader(join(trained, "model.safetensors"));
  const scaled: Record<string, TensorData> = {};
  for (const t of h.tensors) {
    const a = Float32Array.from(readTensor(h, t.name).data as Float32Array, (x) => x * 1e20);
    if (!a.every(Number.isFinite))
      throw new Error(`${t.name} is not finite after scaling; the case would test loading, not generation`);
    scaled[t.name] = { dtype: "F32", shape: t.shape, data: a };
  }
  writeSafetensors(join(huge, "model.safetensors"), scaled, { format: "pt" });

  // vocab_size rounded up to a multiple of 64 past the tokenizer; the padding rows win every draw
  const V = Math.ceil((sizeA + 1) / 64) * 64;
  padded = headModel(join(dir, "padded"), V, (j) => (j >= sizeA ? 5 + 0.01 * (j - sizeA) : 0.02 * Math.sin(j)));
  // every real token's logit overflows to -Infinity; only the padding is finite
  deadVocab = headModel(join(dir, "dead-vocab"), V, (j) => (j >= sizeA ? 1 : -1e38));
});

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
const jsonLines = (out: string) =>
  out
    .trim()
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l));

describe("generate: weights that load but whose logits are not finite", () => {
  for (const extra of [
    ["--temperature", "0"],
    ["--temperature", "0.8", "--top-k", "5", "--top-p", "0.9"],
    ["--temperature", "0", "--no-cache"],
  ])
    test(`refused at the first token, not answered with ids (${extra.join(" ")})`, () => {
      const before = snapshot(huge);
      const r = run([GEN, "--ckpt", huge, "--prompt-ids", "1,2,3", "--max-new-tokens", "4", ...extra]);
      expectRefusal(
        r,
        new RegExp(
          `^bunlm: error: ${esc(huge)}: the model's logits are NaN at generated token 1; its weights are broken \\(bun cmd/ckpt-inspect\\.ts ${esc(huge)} --stats`,
        ),
      );
      expect(r.out).toBe("");
      expectUnchanged(before, huge);
    });

  test("a prompts file: the prompt it failed on is named", () => {
    const f = join(dir, "two.jsonl");
    writeFileSync(f, '{"prompt_ids": [1]}\n{"prompt_ids": [2]}\n');
    expectRefusal(
      run([GEN, "--ckpt", huge, "--prompts", f, "--max-new-tokens", "2"]),
      /logits are NaN at generated token 1 of prompt 1;/,
    );
  });

  test("logits that are -Infinity for every token the tokenizer has: nothing can be sampled", () => {
    const r = run([GEN, "--ckpt", deadVocab, "--tokenizer", tokA, "--prompt-ids", "1,2", "--max-new-tokens", "3"]);
    expectRefusal(
      r,
      /dead-vocab: the model's logits are all -Infinity \(nothing can be sampled\) at generated token 1; its weights are broken/,
    );
  });
});

describe("generate: a tokenizer other than the checkpoint's", () => {
  test("--tokenizer against the checkpoint's own tokenizer.json: both directories named, and the way out", () => {
    const r = run([GEN, "--ckpt", trained, "--tokenizer", tokB, "--prompt", "The river", "--max-new-tokens", "2"]);
    expectRefusal(
      r,
      new RegExp(
        `^bunlm: error: --tokenizer ${esc(tokB)}: is not the tokenizer of ${esc(trained)} \\(hash \\w+, .*tokenizer\\.json has \\w+\\); leave --tokenizer out to use the checkpoint's own$`,
      ),
    );
    expect(r.out).toBe("");
  });

  test("--tokenizer against the hash in meta.json, when the checkpoint has no tokenizer copy", () => {
    const r = run([GEN, "--ckpt", metaOnly, "--tokenizer", tokB, "--prompt-ids", "1,2", "--max-new-tokens", "2"]);
    expectRefusal(
      r,
      new RegExp(
        `^bunlm: error: --tokenizer ${esc(tokB)}: is not the tokenizer ${esc(metaOnly)} was trained with \\(hash \\w+, ${esc(metaOnly)}/meta\\.json says \\w+\\); give the tokenizer .* was packed with$`,
      ),
    );
  });

  test("a tokenizer.json copy that is not the one meta.json says the checkpoint was trained with", () => {
    const r = run([GEN, "--ckpt", swapped, "--prompt-ids", "1,2", "--max-new-tokens", "2"]);
    expectRefusal(
      r,
      new RegExp(
        `^bunlm: error: ${esc(swapped)}/tokenizer\\.json: is not the tokenizer ${esc(swapped)} was trained with .*; give that one with --tokenizer DIR$`,
      ),
    );
  });

  test("the checkpoint's own tokenizer, implicit or named (also through a trailing slash), generates", () => {
    for (const extra of [[], ["--tokenizer", tokA], ["--tokenizer", trained + "/"]]) {
      const r = run([
        GEN,
        "--ckpt",
        trained,
        ...extra,
        "--prompt",
        "The river",
        "--max-new-tokens",
        "3",
        "--temperature",
        "0",
      ]);
      expect(r.err).toBe("");
      expect(r.code).toBe(0);
      expect(typeof jsonLines(r.out)[0].text).toBe("string");
    }
    const m = run([GEN, "--ckpt", metaOnly, "--tokenizer", tokA, "--prompt", "The river", "--max-new-tokens", "3"]);
    expect(m.code).toBe(0);
  });

  test("a checkpoint that records no tokenizer takes any tokenizer that fits, and refuses one too large", () => {
    const r = run([GEN, "--ckpt", bare, "--tokenizer", tokB, "--prompt", "The river", "--max-new-tokens", "3"]);
    expect(r.code).toBe(0);
    const small = headModel(join(dir, "small"), 64, () => 0);
    expectRefusal(
      run([GEN, "--ckpt", small, "--tokenizer", tokA, "--prompt", "hi"]),
      new RegExp(
        `^bunlm: error: --tokenizer ${esc(tokA)}: has ${sizeA} tokens, the model in .*small only 64: they do not belong together`,
      ),
    );
  });
});

describe("generate: a vocabulary padded beyond the tokenizer", () => {
  test("without a tokenizer the padding wins (the case is real)", () => {
    const r = run([GEN, "--ckpt", padded, "--prompt-ids", "1,2", "--max-new-tokens", "4", "--temperature", "0"]);
    expect(r.code).toBe(0);
    expect(jsonLines(r.out)[0].ids.every((id: number) => id >= sizeA)).toBe(true);
  });

  const settings = [
    ["--temperature", "0"],
    ["--temperature", "1"],
    ["--temperature", "3", "--top-k", "50"],
    ["--temperature", "0.7", "--top-p", "0.5"],
  ];
  for (const s of settings)
    test(`with --tokenizer every id is one the tokenizer has, and decodes (${s.join(" ")})`, () => {
      const r = run([
        GEN,
        "--ckpt",
        padded,
        "--tokenizer",
        tokA,
        "--prompt-ids",
        "1,2",
        "--max-new-tokens",
        "12",
        "--seed",
        "4",
        "--logprobs",
        ...s,
      ]);
      expect(r.err).toBe("");
      expect(r.code).toBe(0);
      const o = jsonLines(r.out)[0];
      expect(o.ids.length).toBeGreaterThan(0);
      expect(o.ids.every((id: number) => id < sizeA)).toBe(true);
      expect(typeof o.text).toBe("string");
      // the full softmax's log-probs: the padding keeps nearly all the mass, so every real token is unlikely
      expect(o.logprobs.every((x: number) => x < -10)).toBe(true);
    });
});

describe("generate: generation_config.json of a training checkpoint", () => {
  test("every checkpoint has one: <|endoftext|> and <|im_end|> as eos, as transformers reads it, its sum in meta.json", () => {
    const tok = Tokenizer.fromDir(trained);
    const eot = tok.specialId("<|endoftext|>");
    const file = join(trained, "generation_config.json");
    expect(JSON.parse(readFileSync(file, "utf8"))).toEqual({
      _from_model_config: false,
      bos_token_id: eot,
      eos_token_id: [eot, tok.specialId("<|im_end|>")],
      pad_token_id: tok.specialId("<|pad|>"),
    });
    const meta = JSON.parse(readFileSync(join(trained, "meta.json"), "utf8"));
    expect(meta.files["generation_config.json"]).toEqual(fileSum(file));
  });

  test("removing a checkpoint removes it with the other files: no directory is left behind for it", () => {
    const copy = join(dir, "removed");
    cpSync(trained, copy, { recursive: true });
    expect(removeCheckpoint(copy)).toEqual([]);
    expect(existsSync(copy)).toBe(false);
  });

  test("edited after the save, it is refused by its recorded size and CRC-32, not obeyed", () => {
    const ck = join(dir, "edited-gc");
    cpSync(trained, ck, { recursive: true });
    const file = join(ck, "generation_config.json");
    // <|im_end|> no longer ends a completion
    writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, "utf8")), eos_token_id: [0] }));
    const before = snapshot(ck);
    expectRefusal(
      run([GEN, "--ckpt", ck, "--prompt-ids", "1,2", "--max-new-tokens", "2"]),
      /edited-gc\/generation_config\.json: .* but .*edited-gc\/meta\.json recorded \d+ \(truncated or replaced/,
    );
    expectUnchanged(before, ck);
  });
});
