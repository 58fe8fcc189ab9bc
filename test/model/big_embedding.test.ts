// A model whose embedding is over one storage binding: Qwen2.5-0.5B's 151,936 × 896 table (544 MB in
// f32; lavapipe binds at most 128 MiB), tied to the head, one layer. It is made by initParams, saved,
// loaded, generates the greedy tokens of the model it was saved from, and one AdamW step on a batch
// lowers that batch's loss — under the adapter's real binding limit, so every op of generation and of
// the training step meets the split paths at full size. Prints its time and memory (JSON) for the log.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initGpu, maxBindingBytes } from "../../lib/gpu/index.ts";
import { Tensor, scopeAsync } from "../../lib/tensor/index.ts";
import { parseModelConfig } from "../../lib/model/config.ts";
import { disposeParams, initParams, namedParams } from "../../lib/model/params.ts";
import { loadModel, saveModel } from "../../lib/model/checkpoint.ts";
import { forward, plainPositions } from "../../lib/model/transformer.ts";
import { generate } from "../../lib/model/generate.ts";
import { crossEntropy } from "../../lib/ops/cross_entropy.ts";
import { backward } from "../../lib/ops/backward.ts";
import { AdamW, ADAMW_DEFAULTS } from "../../lib/optim/adamw.ts";

const dir = mkdtempSync(join(tmpdir(), "bunlm-big-embedding-"));
beforeAll(async () => {
  await initGpu();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const config = parseModelConfig({
  vocab_size: 151936,
  hidden_size: 896,
  num_hidden_layers: 1,
  num_attention_heads: 14,
  num_key_value_heads: 2,
  intermediate_size: 256,
  tie_word_embeddings: true,
  max_position_embeddings: 64,
});
const greedy = { maxNewTokens: 4, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [] };
const prompt = [151935, 17, 100000, 4242];

test("a 151,936 × 896 embedding: save, load, generate, one training step, under the adapter's binding limit", async () => {
  const t0 = performance.now();
  const times: Record<string, number> = {};
  const lap = (name: string) => (times[name] = Math.round(performance.now() - t0));
  const V = config.vocab_size,
    C = config.hidden_size;
  expect(V * C * 4).toBeGreaterThan(maxBindingBytes()); // the point of the test

  const made = initParams(config, 1);
  lap("init");
  await saveModel(dir, config, made);
  lap("save");
  const want = await generate(config, made, prompt, greedy);
  lap("generate_made");
  disposeParams(made);

  const { params } = loadModel(dir);
  lap("load");
  const got = await generate(config, params, prompt, greedy);
  lap("generate_loaded");
  expect(got.ids).toEqual(want.ids);
  expect(got.ids.length).toBe(4);

  // one step on 2 rows of 8 tokens; the second forward sees the updated weights
  const B = 2,
    T = 8;
  const tokens = Int32Array.from({ length: B * (T + 1) }, (_, i) => (i * 7919 + 13) % V);
  const ids = Int32Array.from({ length: B * T }, (_, i) => tokens[Math.floor(i / T) * (T + 1) + (i % T)]!);
  const targets = Int32Array.from({ length: B * T }, (_, i) => tokens[Math.floor(i / T) * (T + 1) + (i % T) + 1]!);
  const named = namedParams(params);
  for (const t of named.values()) t.param();
  const opt = new AdamW([...named.keys()], [...named.values()], ADAMW_DEFAULTS);
  const lossOf = async (train: boolean) =>
    scopeAsync(async () => {
      const logits = forward(
        config,
        params,
        Tensor.from(ids, [B * T], "i32"),
        Tensor.from(plainPositions(B, T), [B * T], "i32"),
        B,
        T,
      );
      const loss = crossEntropy(logits, Tensor.from(targets, [B * T], "i32"));
      const value = (await loss.toArray())[0]!;
      if (train) {
        backward(loss);
        opt.computeNorm();
        opt.update(1e-3);
        for (const t of named.values()) {
          t.grad?.dispose();
          t.grad = null;
        }
      }
      return value;
    });
  const before = await lossOf(true);
  lap("train_step");
  const after = await lossOf(false);
  lap("forward");
  // random init (std 0.02): logits of std about 0.02·√896 = 0.6 around 0, so the loss is about
  // ln V + 0.6² / 2 = 11.93 + 0.18
  expect(Math.abs(before - Math.log(V) - 0.18)).toBeLessThan(0.1);
  expect(after).toBeLessThan(before - 0.01);
  const norm = (await opt.norm.stats.toArray())[0]!;
  expect(Number.isFinite(norm) && norm > 0).toBe(true);
  opt.dispose();
  disposeParams(params);
  console.log(
    JSON.stringify({
      big_embedding: {
        ms: times,
        loss_before: before,
        loss_after: after,
        rss_mb: Math.round(process.memoryUsage().rss / 2 ** 20),
      },
    }),
  );
}, 900_000);
