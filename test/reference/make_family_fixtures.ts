// Regenerates the Hugging Face family fixtures (committed, so the tests run without Python):
//   bun test/reference/make_family_fixtures.ts [FAMILY...]
// For each family, test/reference/hf_families_ref.py (PyTorch, written from the family's modeling code,
// not from bunlm) writes fixtures/hf-<family>/: a small random checkpoint as transformers saves that
// family (config.json, model.safetensors or shards + index); this script writes batch.json, and the
// reference writes expected.safetensors (logits, loss, every gradient; with experts the auxiliary loss too)
// and greedy.json.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Rng } from "../../lib/base/rng.ts";

export const FIXTURES = join(import.meta.dir, "fixtures");

/** Each family with the reference's seed for its weights (chosen so that the greedy tokens vary and no step is a near tie). */
export const FAMILIES: Record<string, number> = {
  llama3: 1,
  "llama-linear": 1,
  qwen2: 6,
  qwen3: 7,
  mistral: 3,
  "deepseek-v2": 6,
  "deepseek-v2-qlora": 2,
  // also chosen so that every token's K-th and K+1-th router logits are 1e-3 apart or more (the reference asserts it)
  "qwen2-moe": 4,
  "deepseek-v2-moe": 6,
};

/** The prompt the greedy fixtures continue, and how many tokens (past Mistral's 5-token window). */
export const GREEDY_PROMPT = [3, 17, 42, 8, 25];
export const GREEDY_TOKENS = 14;

/**
 * Two rows of 14 tokens: row 0 one document, row 1 two (positions restart at t = 9), one ignored
 * target (-100). Rows longer than Mistral's window, positions past llama3 / yarn's short original lengths.
 */
export function familyBatch(seed: number, vocab: number) {
  const B = 2,
    T = 14,
    rng = new Rng(1000 + seed);
  const input_ids = Array.from({ length: B }, () => Array.from({ length: T }, () => rng.int(vocab)));
  const targets = Array.from({ length: B }, (_, b) =>
    Array.from({ length: T }, (_, t) => (b === 1 && t === 5 ? -100 : rng.int(vocab))),
  );
  const position_ids = [
    Array.from({ length: T }, (_, t) => t),
    Array.from({ length: T }, (_, t) => (t < 9 ? t : t - 9)),
  ];
  return { input_ids, targets, position_ids };
}

function python(args: string[]) {
  const p = Bun.spawnSync(["/usr/bin/python3", join(import.meta.dir, "hf_families_ref.py"), ...args], {
    stderr: "inherit",
  });
  if (p.exitCode !== 0) throw new Error(`hf_families_ref.py ${args.join(" ")} failed`);
}

if (import.meta.main) {
  const only = process.argv.slice(2);
  for (const [family, seed] of Object.entries(FAMILIES)) {
    if (only.length && !only.includes(family)) continue;
    const dir = join(FIXTURES, `hf-${family}`);
    mkdirSync(dir, { recursive: true });
    python(["make", family, dir, String(seed)]);
    const vocab = JSON.parse(await Bun.file(join(dir, "config.json")).text()).vocab_size as number;
    writeFileSync(join(dir, "batch.json"), JSON.stringify(familyBatch(seed, vocab)) + "\n");
    python(["grads", dir, join(dir, "batch.json"), join(dir, "expected.safetensors")]);
    python(["greedy", dir, GREEDY_PROMPT.join(","), String(GREEDY_TOKENS), join(dir, "greedy.json")]);
    console.error(`wrote ${dir}`);
  }
}
