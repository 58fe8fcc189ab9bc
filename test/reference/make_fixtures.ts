// Regenerates the PyTorch parity fixtures (committed, so the tests run without Python):
//   bun test/reference/make_fixtures.ts
// For each tiny config: our initialization → fixtures/<name>/{config.json, model.safetensors}, a fixed
// batch → batch.json, and PyTorch's logits, loss and gradients → expected.safetensors. Plus a
// checkpoint made by PyTorch in Hugging Face's layout (bf16) with its greedy continuation.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { initGpu } from "../../lib/gpu/index.ts";
import { parseModelConfig } from "../../lib/model/config.ts";
import { initParams } from "../../lib/model/params.ts";
import { saveModel } from "../../lib/model/checkpoint.ts";
import { Rng } from "../../lib/base/rng.ts";

export const FIXTURES = join(import.meta.dir, "fixtures");

export const PARITY_CONFIGS: Record<string, object> = {
  "tiny-untied": {
    vocab_size: 61,
    hidden_size: 32,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    intermediate_size: 56,
    tie_word_embeddings: false,
    max_position_embeddings: 64,
  },
  "tiny-tied": {
    vocab_size: 61,
    hidden_size: 32,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 1,
    intermediate_size: 56,
    tie_word_embeddings: true,
    max_position_embeddings: 64,
  },
  "tiny-mla": {
    vocab_size: 61,
    hidden_size: 32,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    intermediate_size: 56,
    attn_type: "mla",
    kv_lora_rank: 12,
    qk_nope_head_dim: 6,
    qk_rope_head_dim: 4,
    v_head_dim: 5,
    max_position_embeddings: 64,
  },
  "tiny-mla-qlora": {
    vocab_size: 61,
    hidden_size: 32,
    num_hidden_layers: 2,
    num_attention_heads: 2,
    intermediate_size: 56,
    attn_type: "mla",
    kv_lora_rank: 8,
    q_lora_rank: 10,
    qk_nope_head_dim: 8,
    qk_rope_head_dim: 6,
    v_head_dim: 7,
    tie_word_embeddings: true,
    max_position_embeddings: 64,
  },
};

export function parityBatch(name: string) {
  const B = 2,
    T = 7,
    rng = new Rng(name.length);
  const input_ids = Array.from({ length: B }, () => Array.from({ length: T }, () => rng.int(61)));
  const targets = Array.from({ length: B }, (_, b) =>
    Array.from({ length: T }, (_, t) => (b === 1 && t === 2 ? -100 : rng.int(61))),
  );
  // row 1 holds two documents: positions restart at t = 4
  const position_ids = [
    [0, 1, 2, 3, 4, 5, 6],
    [0, 1, 2, 3, 0, 1, 2],
  ];
  return {
    input_ids,
    targets,
    position_ids,
    label_smoothing: name.endsWith("-tied") || name.endsWith("-qlora") ? 0.1 : 0,
  };
}

function python(args: string[]) {
  const p = Bun.spawnSync(["/usr/bin/python3", join(import.meta.dir, "llama_ref.py"), ...args], { stderr: "inherit" });
  if (p.exitCode !== 0) throw new Error(`llama_ref.py ${args[0]} failed`);
}

if (import.meta.main) {
  await initGpu();
  for (const [name, raw] of Object.entries(PARITY_CONFIGS)) {
    const dir = join(FIXTURES, name);
    mkdirSync(dir, { recursive: true });
    const c = parseModelConfig(raw);
    // larger than nanoGPT's 0.02 so that the tiny model's logits and gradients are far from zero
    const params = initParams({ ...c, initializer_range: 0.3 }, 42);
    await saveModel(dir, c, params);
    writeFileSync(join(dir, "batch.json"), JSON.stringify(parityBatch(name)) + "\n");
    python(["grads", dir, join(dir, "batch.json"), join(dir, "expected.safetensors")]);
    console.error(`wrote ${dir}`);
  }
  if (!process.argv.includes("--skip-hf")) {
    const hf = join(FIXTURES, "hf-llama");
    python(["make-hf", hf, "7"]);
    python(["greedy", hf, "1,5,17,33,8", "24", join(hf, "expected_greedy.json")]);
    console.error(`wrote ${hf}`);
  }
  process.exit(0);
}
