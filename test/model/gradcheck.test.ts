// The whole model's gradients against central finite differences of its own forward (tolerances in
// test/lib/gradcheck.ts), on the tiny config the issue names (2 layers, hidden 32, 4 heads, vocab 61,
// seq 7), tied and untied, with 1, 2 and 4 query heads per kv head, and with latent attention.
import { beforeAll, expect, test } from "bun:test";
import { initGpu } from "../../lib/gpu/index.ts";
import { Tensor, scopeAsync } from "../../lib/tensor/index.ts";
import { backward } from "../../lib/ops/backward.ts";
import { parseModelConfig, type ModelConfig } from "../../lib/model/config.ts";
import { initParams, namedParams, disposeParams } from "../../lib/model/params.ts";
import { forward } from "../../lib/model/transformer.ts";
import { crossEntropy } from "../../lib/ops/cross_entropy.ts";
import { Rng } from "../../lib/base/rng.ts";
import { checkDirectional } from "../lib/gradcheck.ts";

beforeAll(async () => {
  await initGpu();
});

const B = 1,
  T = 7,
  V = 61;

/** cross-entropy on one random sequence holding two documents; every tensor's gradient checked */
async function checkModel(c: ModelConfig, initSeed: number, rng: Rng, pos: number[]): Promise<void> {
  const params = initParams({ ...c, initializer_range: 0.3 }, initSeed);
  const idsArr = Array.from({ length: B * T }, () => rng.int(V));
  const tgtArr = Array.from({ length: B * T }, () => rng.int(V));
  const loss = (withBackward = false) =>
    scopeAsync(async () => {
      const l = crossEntropy(
        forward(c, params, Tensor.from(idsArr, [B * T], "i32"), Tensor.from(pos, [B * T], "i32"), B, T),
        Tensor.from(tgtArr, [B * T], "i32"),
      );
      const v = (await l.toArray())[0]!;
      if (withBackward) backward(l);
      return v;
    });
  await loss(true); // analytic gradients into .grad
  expect(await checkDirectional(params, () => loss(), rng)).toBe(namedParams(params).size);
  disposeParams(params);
}

for (const tied of [false, true])
  for (const kv of [4, 2, 1])
    test(`${tied ? "tied" : "untied"}, ${4 / kv} query head(s) per kv head`, async () => {
      const c = parseModelConfig({
        vocab_size: V,
        hidden_size: 32,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: kv,
        intermediate_size: 48,
        tie_word_embeddings: tied,
      });
      const shape = initParams(c, 0);
      expect(namedParams(shape).size).toBe(tied ? 20 : 21);
      disposeParams(shape);
      await checkModel(c, 7 + kv, new Rng(kv * 10 + Number(tied)), [0, 1, 2, 0, 1, 2, 3]);
    });

for (const qLora of [0, 8])
  test(`multi-head latent attention${qLora ? ", low-rank queries" : ""}`, async () => {
    const c = parseModelConfig({
      vocab_size: V,
      hidden_size: 32,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      intermediate_size: 48,
      attn_type: "mla",
      kv_lora_rank: 10,
      q_lora_rank: qLora,
      qk_nope_head_dim: 6,
      qk_rope_head_dim: 4,
      v_head_dim: 5,
    });
    await checkModel(c, 21 + qLora, new Rng(99 + qLora), [0, 1, 2, 3, 0, 1, 2]);
  });
