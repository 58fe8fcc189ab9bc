// eval's scorer against a plain computation: each request alone through forward() (the whole logits
// of the model, B = 1), log-softmax on the host (cross_entropy.ts's CPU reference). Batched, padded
// to the longest request, with the head cut into passes of a few rows, the sums must not change;
// and sft shards are scored on their loss_mask only, with their position_ids.
import { beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initGpu } from "../../lib/gpu/index.ts";
import { Tensor } from "../../lib/tensor/tensor.ts";
import { noGrad } from "../../lib/tensor/autograd.ts";
import { forward } from "../../lib/model/transformer.ts";
import { loadModel } from "../../lib/model/checkpoint.ts";
import { parseModelConfig, type ModelConfig } from "../../lib/model/config.ts";
import { initParams, type ModelParams } from "../../lib/model/params.ts";
import { IGNORE_INDEX, logprobsRef } from "../../lib/ops/cross_entropy.ts";
import { readKey } from "../../lib/data/shards.ts";
import { scoreRequests, type ScoreRequest } from "../../lib/train/eval_score.ts";
import { shardPerplexity } from "../../lib/train/eval_text.ts";
import { Tokenizer } from "../../lib/tokenizer/tokenizer.ts";

const root = join(import.meta.dir, "..", "..");
const fixture = join(import.meta.dir, "fixtures", "tiny-bytes");
let c: ModelConfig, p: ModelParams;

beforeAll(async () => {
  await initGpu();
  ({ config: c, params: p } = loadModel(fixture));
});

/** Σ log p(target) of one request from the full logits of forward() on it alone. */
async function alone(q: ScoreRequest, m = { c, p }): Promise<number> {
  const { c, p } = m;
  const n = q.ids.length;
  const pos = q.pos ?? Array.from({ length: n }, (_, i) => i);
  const z = (await noGrad(() =>
    forward(c, p, Tensor.from(q.ids, [n], "i32"), Tensor.from(pos, [n], "i32"), 1, n),
  ).toArray()) as Float32Array;
  const { lp } = logprobsRef(z, q.targets, n, c.vocab_size);
  return lp.reduce((a, b) => a + b, 0);
}

const X = IGNORE_INDEX;
const REQS: ScoreRequest[] = [
  { ids: [256, 84, 104, 101], targets: [84, 104, 101, 32] },
  { ids: [5, 6, 7, 8, 9, 10, 11, 12, 13], targets: [X, X, X, 9, 10, 11, 12, 13, 14] },
  { ids: [1], targets: [2] },
  // two documents in one row: positions restart, and attention stays inside each
  { ids: [40, 41, 42, 256, 43, 44], targets: [41, 42, 256, 43, 44, 45], pos: [0, 1, 2, 3, 0, 1] },
  { ids: [200, 201, 202], targets: [X, X, X] },
];

describe("scoreRequests", () => {
  test("batched, padded and with the head in passes of 5 rows: each request's sum as scored alone", async () => {
    const want = await Promise.all(REQS.map((q) => alone(q)));
    const rows5 = 5 * 4 * c.vocab_size;
    for (const [batch, bytes] of [
      [3, rows5],
      [5, undefined],
      [1, rows5],
    ] as const) {
      const got = await scoreRequests(c, p, REQS, batch, bytes);
      expect(got.map((s) => s.tokens)).toEqual([4, 6, 1, 6, 0]);
      got.forEach((s, i) => expect(Math.abs(s.logprob - want[i]!)).toBeLessThan(1e-5 * Math.abs(want[i]!) + 1e-6));
    }
    expect(want[4]).toBe(0);
  });
});

describe("a 151,936-token vocabulary (Qwen2.5's)", () => {
  test("the head runs 55 rows at a time (32 MiB of logits), and the sums are those of the full logits", async () => {
    const big = parseModelConfig({
      vocab_size: 151936,
      hidden_size: 32,
      num_hidden_layers: 1,
      num_attention_heads: 2,
      intermediate_size: 64,
      tie_word_embeddings: true,
      max_position_embeddings: 64,
    });
    const m = { c: big, p: initParams({ ...big, initializer_range: 0.3 }, 3) };
    const ids = (k: number) => Array.from({ length: 40 }, (_, i) => (i * 7919 + k * 104729) % 151936);
    const reqs = [0, 1].map((k) => ({ ids: ids(k), targets: [...ids(k).slice(1), 151935] }));
    const got = await scoreRequests(big, m.p, reqs, 2); // 80 rows: two passes
    for (const [i, q] of reqs.entries()) {
      const want = await alone(q, m);
      expect(got[i]!.tokens).toBe(40);
      expect(Math.abs(got[i]!.logprob - want) / Math.abs(want)).toBeLessThan(1e-5);
    }
  });
});

describe("shardPerplexity on sft shards", () => {
  test("only the assistant's tokens (loss_mask) count, at their position_ids", async () => {
    const tmp = mkdtempSync(join(tmpdir(), "bunlm-evalsft-"));
    const chats = join(tmp, "chat.jsonl");
    const conv = (u: string, a: string) =>
      JSON.stringify({
        messages: [
          { role: "user", content: u },
          { role: "assistant", content: a },
        ],
      });
    writeFileSync(chats, `${conv("hi", "hello!")}\n${conv("2+2?", "4")}\n${conv("name?", "bunlm")}\n`);
    const out = join(tmp, "sft");
    const r = Bun.spawnSync([
      process.execPath,
      join(root, "cmd", "pack.ts"),
      "sft",
      "--tokenizer",
      fixture,
      "--seq-len",
      "48",
      "--out",
      out,
      chats,
    ]);
    if (r.exitCode !== 0) throw new Error(r.stderr.toString());
    const ids = readKey(out, "train", "input_ids"),
      tg = readKey(out, "train", "target_ids"),
      mask = readKey(out, "train", "loss_mask"),
      pos = readKey(out, "train", "position_ids");
    const L = 48,
      R = ids.shape[0]!;
    let want = 0,
      ones = 0;
    for (let i = 0; i < R; i++) {
      const targets = Array.from((tg.data as Int32Array).subarray(i * L, (i + 1) * L), (t, k) =>
        (mask.data as Uint8Array)[i * L + k] ? t : X,
      );
      ones += targets.filter((t) => t !== X).length;
      want -= await alone({
        ids: (ids.data as Int32Array).subarray(i * L, (i + 1) * L),
        targets,
        pos: (pos.data as Int32Array).subarray(i * L, (i + 1) * L),
      });
    }
    const tok = Tokenizer.fromDir(fixture);
    const got = await shardPerplexity(c, p, out, { split: "auto", batchSize: 2, limit: 0, tok });
    expect(got.split).toBe("train");
    expect(got.tokens).toBe(ones);
    expect(ones).toBeGreaterThan(0);
    expect(ones).toBeLessThan((R * L) / 2); // the user's turns and the padding are not scored
    expect(Math.abs(got.nll - want) / want).toBeLessThan(1e-5);
  });
});
