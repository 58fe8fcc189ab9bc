// bun bench/model.ts [--attn gqa|mla] [--layers 6 --hidden 384 --heads 6 --kv-heads 2 --intermediate 1024 --vocab 8192 --seq 256 --batch 1 --steps 3]
//                    [--gen-tokens 32] [--gen-batches 1,16]
// Forward+backward tokens/s of the model against PyTorch (same weights, same batch shape, f32) in the
// same run, then generation tokens/s with the KV cache against recomputing the sequence each token,
// then batched generation (generate_batch.ts): tokens/s of B different prompts decoded together, at
// each batch size of --gen-batches. Prints one JSON line per figure.
import { defineCommand } from "citty";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initGpu, flush } from "../lib/gpu/index.ts";
import { Tensor, scopeAsync, zeroGrad } from "../lib/tensor/index.ts";
import { backward } from "../lib/ops/backward.ts";
import { parseModelConfig } from "../lib/model/config.ts";
import { initParams, namedParams, countParams } from "../lib/model/params.ts";
import { forward, plainPositions } from "../lib/model/transformer.ts";
import { saveModel } from "../lib/model/checkpoint.ts";
import { generate } from "../lib/model/generate.ts";
import { generateBatch } from "../lib/model/generate_batch.ts";
import { cacheBytesPerToken } from "../lib/model/latent_cache.ts";
import { crossEntropy } from "../lib/ops/cross_entropy.ts";
import { Rng } from "../lib/base/rng.ts";
import { runCli } from "../cmd/_cli.ts";
import { torchPython } from "./python.ts";

const main = defineCommand({
  meta: { name: "bench-model", description: "model forward+backward and generation throughput" },
  args: {
    layers: { type: "string", default: "6" },
    hidden: { type: "string", default: "384" },
    heads: { type: "string", default: "6" },
    "kv-heads": { type: "string", default: "2" },
    intermediate: { type: "string", default: "1024" },
    vocab: { type: "string", default: "8192" },
    seq: { type: "string", default: "256" },
    batch: { type: "string", default: "1" },
    steps: { type: "string", default: "3" },
    "gen-tokens": { type: "string", default: "32", description: "tokens generated for the generation figures" },
    "gen-batches": { type: "string", default: "1,16", description: "batch sizes of the batched generation figure" },
    torch: { type: "boolean", default: true, description: "measure PyTorch too (--no-torch skips it)" },
    attn: {
      type: "string",
      default: "gqa",
      description: "gqa, or mla (kv_lora_rank 128, qk_nope 32, qk_rope 32, v_head_dim 64)",
    },
  },
  async run({ args }) {
    const g = await initGpu();
    const mla =
      args.attn === "mla"
        ? { attn_type: "mla", kv_lora_rank: 128, qk_nope_head_dim: 32, qk_rope_head_dim: 32, v_head_dim: 64 }
        : {};
    const c = parseModelConfig({
      vocab_size: +args.vocab,
      hidden_size: +args.hidden,
      num_hidden_layers: +args.layers,
      num_attention_heads: +args.heads,
      num_key_value_heads: +args["kv-heads"],
      intermediate_size: +args.intermediate,
      tie_word_embeddings: true,
      max_position_embeddings: Math.max(+args.seq, 512),
      rms_norm_eps: 1e-5,
      rope_theta: 10000,
      ...mla,
    });
    const B = +args.batch,
      T = +args.seq,
      steps = +args.steps;
    const params = initParams(c, 0);
    const rng = new Rng(1);
    const ids = Array.from({ length: B * T }, () => rng.int(c.vocab_size));
    const tgt = Array.from({ length: B * T }, () => rng.int(c.vocab_size));
    const step = () =>
      scopeAsync(async () => {
        const logits = forward(
          c,
          params,
          Tensor.from(ids, [B * T], "i32"),
          Tensor.from(plainPositions(B, T), [B * T], "i32"),
          B,
          T,
        );
        backward(crossEntropy(logits, Tensor.from(tgt, [B * T], "i32")));
        await flush();
        zeroGrad(namedParams(params).values());
      });
    await step(); // compiles every pipeline
    const t0 = performance.now();
    for (let s = 0; s < steps; s++) await step();
    const ours = (B * T * steps) / ((performance.now() - t0) / 1000);
    let ref: any = null;
    if (args.torch && c.attn_type === "gqa") {
      const dir = mkdtempSync(join(tmpdir(), "bunlm-bench-model-"));
      await saveModel(dir, c, params);
      const python = torchPython();
      if (python !== null) {
        const p = Bun.spawnSync(
          [python, join(import.meta.dir, "torch_model.py"), dir, String(B), String(T), String(steps)],
          { stderr: "inherit" },
        );
        if (p.exitCode === 0) ref = JSON.parse(p.stdout.toString());
      }
    }
    const shape = {
      attn: c.attn_type,
      layers: c.num_hidden_layers,
      hidden: c.hidden_size,
      heads: c.num_attention_heads,
      kv_heads: c.num_key_value_heads,
      vocab: c.vocab_size,
      seq: T,
      batch: B,
      params: countParams(c),
    };
    console.log(
      JSON.stringify({
        figure: "train_fwd_bwd",
        ...shape,
        provider: g.provider,
        adapter: g.info.description || g.info.device,
        tokens_per_s: +ours.toFixed(1),
        torch_tokens_per_s: ref ? +ref.torch_tokens_per_s.toFixed(1) : null,
        ratio: ref ? +(ours / ref.torch_tokens_per_s).toFixed(3) : null,
        torch_device: ref?.torch_device ?? null,
      }),
    );

    const n = +args["gen-tokens"];
    const prompt = ids.slice(0, 16);
    const gen = async (useCache: boolean) => {
      const greedy = { temperature: 0, topK: 0, topP: 1, seed: 0, stop: [], useCache };
      await generate(c, params, prompt, { ...greedy, maxNewTokens: 2 }); // warm-up
      const r = await generate(c, params, prompt, { ...greedy, maxNewTokens: n });
      return { tps: r.ids.length / r.seconds, ids: r.ids };
    };
    const withCache = await gen(true),
      without = await gen(false);
    const same = withCache.ids.every((x, i) => x === without.ids[i]);
    const cache =
      c.attn_type === "mla"
        ? cacheBytesPerToken(c).latent
        : 2 * c.num_hidden_layers * c.num_key_value_heads * c.head_dim * 4;
    // the GQA model of the same size caches 2·layers·kv_heads·head_dim floats per token
    const gqaEquivalent = 2 * c.num_hidden_layers * +args["kv-heads"] * (c.hidden_size / c.num_attention_heads) * 4;
    console.log(
      JSON.stringify({
        figure: "generate",
        ...shape,
        prompt_tokens: prompt.length,
        new_tokens: n,
        tokens_per_s_cache: +withCache.tps.toFixed(2),
        tokens_per_s_no_cache: +without.tps.toFixed(2),
        speedup: +(withCache.tps / without.tps).toFixed(2),
        same_tokens: same,
        kv_cache_bytes_per_token: cache,
        gqa_kv_cache_bytes_per_token: gqaEquivalent,
      }),
    );

    // batched generation: B different prompts of 16 tokens, greedy, no stop, so every row makes n tokens
    const sizes = args["gen-batches"].split(",").map(Number);
    const rngP = new Rng(2);
    const prompts = Array.from({ length: Math.max(...sizes) }, (_, i) =>
      i === 0 ? prompt : Array.from({ length: 16 }, () => rngP.int(c.vocab_size)),
    );
    const batchRun = (b: number, maxNewTokens: number) =>
      generateBatch(
        c,
        params,
        prompts.slice(0, b).map((prompt) => ({ prompt, stop: [] })),
        { temperature: 0, topK: 0, topP: 1, maxNewTokens },
      );
    const figures: Record<string, number> = {};
    let first: number[] | null = null,
      agree = true;
    for (const b of sizes) {
      await batchRun(b, 2); // warm-up: the matmul kernels for b rows
      const t = performance.now();
      const gens = await batchRun(b, n);
      figures[`tokens_per_s_batch_${b}`] = +((b * n) / ((performance.now() - t) / 1000)).toFixed(2);
      // the first prompt (generate's above) gives the same tokens in every batch
      first ??= gens[0]!.ids;
      agree &&= gens[0]!.ids.every((x, i) => x === first![i]) && gens[0]!.ids.length === first.length;
    }
    console.log(
      JSON.stringify({
        figure: "generate_batch",
        ...shape,
        prompt_tokens: 16,
        new_tokens: n,
        ...figures,
        same_tokens: agree && first!.every((x, i) => x === withCache.ids[i]),
      }),
    );
  },
});

if (import.meta.main) await runCli(main);
