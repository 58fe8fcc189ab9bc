// A BF16 or F16 checkpoint loaded with weights "stored" (its matrices half-width on the device, as
// generate, chat and eval load it) computes exactly what the same checkpoint widened to f32 computes:
// the forward's logits bit for bit, the greedy tokens and their log-probabilities through the KV
// cache, and eval's log-probs; the weights' device bytes halve. Fixtures: the family references'
// checkpoints (test/reference/make_family_fixtures.ts): Qwen3 in bf16, Llama with linear RoPE scaling
// in f16, DeepSeek-V2's latent attention in bf16 (its kv_b_proj stays f32: the decode kernel reads it).
import { beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { initGpu, poolStats } from "../../lib/gpu/index.ts";
import { Tensor, noGrad, scopeAsync } from "../../lib/tensor/index.ts";
import { loadModel, modelTensors, type WeightsOnDevice } from "../../lib/model/checkpoint.ts";
import { forward } from "../../lib/model/transformer.ts";
import { generate } from "../../lib/model/generate.ts";
import { disposeParams, namedParams } from "../../lib/model/params.ts";
import { batchLogprobs } from "../../lib/train/eval_score.ts";
import { backward } from "../../lib/ops/backward.ts";
import { crossEntropy } from "../../lib/ops/cross_entropy.ts";

const FIX = join(import.meta.dir, "..", "reference", "fixtures");

beforeAll(async () => {
  await initGpu();
});

function sameBits(a: Float32Array, b: Float32Array): string {
  if (a.length !== b.length) return `lengths ${a.length} and ${b.length}`;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length),
    y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return `element ${i}: ${a[i]} vs ${b[i]}`;
  return "same bits";
}

/** Everything the inference commands compute, with the weights loaded one way; and their device bytes. */
async function run(dir: string, weights: WeightsOnDevice) {
  const batch = JSON.parse(readFileSync(join(dir, "batch.json"), "utf8"));
  const greedy = JSON.parse(readFileSync(join(dir, "greedy.json"), "utf8"));
  const before = poolStats().liveBytes;
  const { config, params } = loadModel(dir, { weights });
  const device = poolStats().liveBytes - before;
  const dtypes = new Map([...namedParams(params)].map(([n, t]) => [n, t.dtype]));
  const B = batch.input_ids.length,
    T = batch.input_ids[0].length;
  const ids = Int32Array.from(batch.input_ids.flat() as number[]),
    pos = Int32Array.from(batch.position_ids.flat() as number[]),
    targets = Int32Array.from(batch.targets.flat() as number[]);
  const logits = await scopeAsync(async () =>
    noGrad(() => forward(config, params, Tensor.from(ids, [B * T], "i32"), Tensor.from(pos, [B * T], "i32"), B, T))
      .toArray()
      .then((x) => x as Float32Array),
  );
  const lp = await batchLogprobs(config, params, ids, pos, targets, B, T);
  const g = await generate(config, params, greedy.prompt, {
    maxNewTokens: greedy.ids.length,
    temperature: 0,
    topK: 0,
    topP: 1,
    seed: 0,
    stop: [],
    useCache: true,
  });
  disposeParams(params);
  return { device, dtypes, logits, lp, g, want: greedy.ids as number[] };
}

const CASES: [string, "bf16" | "f16"][] = [
  ["qwen3", "bf16"],
  ["llama-linear", "f16"],
  ["deepseek-v2", "bf16"],
];

describe("half-width weights on the device = the same checkpoint in f32", () => {
  for (const [family, half] of CASES)
    test(`${family} (${half}): logits, greedy tokens and log-probs bit for bit; the weights' bytes halve`, async () => {
      const dir = join(FIX, `hf-${family}`);
      const f = await run(dir, "f32"),
        h = await run(dir, "stored");
      // which tensors stay half: the matrices, but not kv_b_proj; norms and biases are widened
      for (const [name, dt] of h.dtypes) {
        const want = /norm\.weight$|\.bias$|kv_b_proj/.test(name) ? "f32" : half;
        expect(`${name} ${dt}`).toBe(`${name} ${want}`);
      }
      for (const dt of f.dtypes.values()) expect(dt).toBe("f32");
      expect(sameBits(f.logits, h.logits)).toBe("same bits");
      expect(sameBits(f.lp, h.lp)).toBe("same bits");
      expect(h.g.ids).toEqual(f.g.ids);
      expect(h.g.ids).toEqual(f.want); // the PyTorch reference's greedy tokens
      expect(sameBits(Float32Array.from(h.g.logprobs), Float32Array.from(f.g.logprobs))).toBe("same bits");
      // the pool's bytes (size classes included): the matrices are most of the model
      expect(h.device / f.device).toBeLessThan(0.6);
      expect(h.device / f.device).toBeGreaterThan(0.45);
    });

  test("an exact count: a bf16 checkpoint's matrices take 2 bytes an element, its norms 4", () => {
    const { params } = loadModel(join(FIX, "hf-qwen3"), { weights: "stored" });
    let bytes = 0,
      want = 0;
    for (const t of namedParams(params).values()) {
      bytes += t.bytes;
      want += t.size * (t.shape.length === 2 ? 2 : 4);
    }
    disposeParams(params);
    expect(bytes).toBe(want);
  });

  test("half weights are not trainable: param() refuses them, backward gives them no gradient, saving refuses them", async () => {
    const { config, params } = loadModel(join(FIX, "hf-qwen3"), { weights: "stored" });
    try {
      expect(params.embed_tokens.requiresGrad).toBe(false);
      expect(() => params.embed_tokens.param()).toThrow("cannot be trained: load the weights as f32");
      // the f32 norms are still parameters, so the graph records; its backward reaches no half weight
      await scopeAsync(async () => {
        const ids = Tensor.from([3, 17, 42], [3], "i32");
        const loss = crossEntropy(
          forward(config, params, ids, Tensor.from([0, 1, 2], [3], "i32"), 1, 3),
          Tensor.from([17, 42, 8], [3], "i32"),
        );
        backward(loss);
        expect(params.layers[0]!.q_proj!.grad).toBe(null);
        expect(params.norm.grad).not.toBe(null);
      });
      // nor can they be saved as if they were f32 values
      await expect(modelTensors(params)).rejects.toThrow("is bf16 on the device (loaded for inference)");
    } finally {
      disposeParams(params);
    }
  });
});
