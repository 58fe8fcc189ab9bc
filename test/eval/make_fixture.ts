// Regenerates the fixture the eval tests compare against (committed, so the tests run without Python):
//   bun test/eval/make_fixture.ts
// fixtures/tiny-bytes: a tiny Llama with a tokenizer that has no merges (ids are UTF-8 bytes, so the
// reference can encode without a tokenizer library), documents and multiple-choice questions, and
// expected.json: what eval_ref.py computes with the PyTorch reference (test/reference/llama_ref.py).
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { initGpu } from "../../lib/gpu/index.ts";
import { parseModelConfig } from "../../lib/model/config.ts";
import { initParams } from "../../lib/model/params.ts";
import { saveModel } from "../../lib/model/checkpoint.ts";
import { trainTokenizer } from "../../lib/tokenizer/train.ts";

export const FIXTURE = join(import.meta.dir, "fixtures", "tiny-bytes");

export const MODEL = {
  vocab_size: 272, // past the tokenizer's 264: a padded vocabulary, as many checkpoints have
  hidden_size: 32,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  intermediate_size: 56,
  tie_word_embeddings: false,
  max_position_embeddings: 64,
};

/**
 * Windows of 16 tokens: the 23- and 20-byte documents roll over two windows each, the second one
 * refilled with earlier tokens; the 24-byte context of the second question is cut from the left.
 * Shards (pack seq --seq-len 8 --doc-mask) have rows that hold parts of two documents.
 */
export const INPUTS = { seq_len: 16, shard_seq_len: 8 };

export const DOCS = ["The cat sat on the mat.", "héllo wörld — ok", "a"];

// answers chosen so that acc and acc_norm differ on this model (expected.json: questions[*].pred*)
export const TASKS = [
  { context: "The cat sat on the", choices: ["mat", "dog house", "a"], answer: 1 },
  { context: "Question: 2+2=? Answer: ", choices: ["4", "five", "22"], answer: 0 },
  { context: "", choices: ["yes", "no"], answer: 1 },
  { context: "Café au", choices: ["lait", "thé vert"], answer: 0 },
];

if (import.meta.main) {
  await initGpu();
  mkdirSync(FIXTURE, { recursive: true });
  const c = parseModelConfig(MODEL);
  // larger than the usual 0.02 so that the tiny model's log-probs differ clearly between tokens
  await saveModel(FIXTURE, c, initParams({ ...c, initializer_range: 0.3 }, 7));
  async function* one() {
    yield { text: "x", source: "inline", index: 1 };
  }
  const tok = join(FIXTURE, "tok");
  await trainTokenizer(one(), tok, { vocabSize: 264 });
  for (const f of ["tokenizer.json", "tokenizer_config.json"])
    writeFileSync(join(FIXTURE, f), await Bun.file(join(tok, f)).text());
  await Bun.$`rm -r ${tok}`;
  writeFileSync(join(FIXTURE, "docs.jsonl"), DOCS.map((text) => `${JSON.stringify({ text })}\n`).join(""));
  writeFileSync(join(FIXTURE, "tasks.jsonl"), TASKS.map((q) => `${JSON.stringify(q)}\n`).join(""));
  writeFileSync(join(FIXTURE, "eval_inputs.json"), `${JSON.stringify(INPUTS)}\n`);
  const p = Bun.spawnSync(
    ["/usr/bin/python3", join(import.meta.dir, "eval_ref.py"), FIXTURE, join(FIXTURE, "expected.json")],
    { stderr: "inherit" },
  );
  if (p.exitCode !== 0) throw new Error("eval_ref.py failed");
  // the tree's JSON is formatted as biome.json says (test/format.test.ts checks every file)
  const biome = join(import.meta.dir, "..", "..", "node_modules", ".bin", "biome");
  if (Bun.spawnSync([biome, "format", "--write", FIXTURE], { stderr: "inherit" }).exitCode !== 0)
    throw new Error("biome format failed");
  console.error(`wrote ${FIXTURE}`);
  process.exit(0);
}
