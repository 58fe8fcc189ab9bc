// The whole model's gradients against central finite differences of its own forward, on the tiny
// config the issue names (2 layers, hidden 32, 4 heads, vocab 61, seq 7), tied and untied, with 1, 2
// and 4 query heads per kv head. For each parameter tensor we compare the directional derivative
// along a random direction u (standard normal per element): (f(θ+hu) - f(θ-hu)) / 2h against ∇f·u.
// h = 3e-4 balances the two errors: the f32 loss (≈ 4) carries ~5e-7 of rounding, ~1e-3 in the
// quotient, and the truncation error, measured at ~4% for h = 1e-2 and ~1% for 3e-3, falls with h²
// to ~0.1%. |∇f·u| is 0.3-10 here, hence the 1e-2 relative tolerance with a 2e-3 floor; a wrong
// backward is off by O(1).
import { beforeAll, describe, expect, test } from "bun:test";
import { initGpu, writeBuffer } from "../../lib/gpu/index.ts";
import { Tensor, scopeAsync, backward, noGrad } from "../../lib/tensor/index.ts";
import { parseModelConfig } from "../../lib/model/config.ts";
import { initParams, namedParams, disposeParams } from "../../lib/model/params.ts";
import { forward } from "../../lib/model/transformer.ts";
import { crossEntropy } from "../../lib/ops/cross_entropy.ts";
import { Rng } from "../../lib/data/rng.ts";
import { normals } from "../../lib/model/params.ts";

beforeAll(async () => {
  await initGpu();
});

const B = 1, T = 7, V = 61;

for (const tied of [false, true])
  for (const kv of [4, 2, 1]) {
    const groups = 4 / kv;
    test(`${tied ? "tied" : "untied"}, ${groups} query head(s) per kv head`, async () => {
      const c = parseModelConfig({ vocab_size: V, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: kv, intermediate_size: 48, tie_word_embeddings: tied });
      const params = initParams({ ...c, initializer_range: 0.3 }, 7 + kv);
      const rng = new Rng(kv * 10 + Number(tied));
      const idsArr = Array.from({ length: B * T }, () => rng.int(V));
      const tgtArr = Array.from({ length: B * T }, () => rng.int(V));
      const pos = [0, 1, 2, 0, 1, 2, 3]; // two documents
      const loss = (withBackward = false) =>
        scopeAsync(async () => {
          const l = crossEntropy(forward(c, params, Tensor.from(idsArr, [B * T], "i32"), Tensor.from(pos, [B * T], "i32"), B, T), Tensor.from(tgtArr, [B * T], "i32"));
          const v = (await l.toArray())[0]!;
          if (withBackward) backward(l);
          return v;
        });
      await loss(true); // analytic gradients into .grad
      let checked = 0;
      for (const [name, p] of namedParams(params)) {
        const theta = (await p.toArray()) as Float32Array;
        const g = (await p.grad!.toArray()) as Float32Array;
        const u = normals(rng, p.size, 1);
        const h = 3e-4;
        const at = async (s: number) => {
          writeBuffer(p.buffer, theta.map((x, i) => x + s * h * u[i]!));
          return noGrad(() => loss());
        };
        const fd = ((await at(1)) - (await at(-1))) / (2 * h);
        writeBuffer(p.buffer, theta);
        let gu = 0;
        for (let i = 0; i < g.length; i++) gu += g[i]! * u[i]!;
        if (!(Math.abs(fd - gu) <= 1e-2 * Math.abs(gu) + 2e-3)) throw new Error(`${name}: finite differences ${fd}, backward ${gu}`);
        checked++;
      }
      expect(checked).toBe(tied ? 20 : 21);
      disposeParams(params);
    });
  }

for (const qLora of [0, 8])
  test(`multi-head latent attention${qLora ? ", low-rank queries" : ""}`, async () => {
    const c = parseModelConfig({ vocab_size: V, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4, intermediate_size: 48, attn_type: "mla", kv_lora_rank: 10, q_lora_rank: qLora, qk_nope_head_dim: 6, qk_rope_head_dim: 4, v_head_dim: 5 });
    const params = initParams({ ...c, initializer_range: 0.3 }, 21 + qLora);
    const rng = new Rng(99 + qLora);
    const idsArr = Array.from({ length: B * T }, () => rng.int(V)), tgtArr = Array.from({ length: B * T }, () => rng.int(V));
    const pos = [0, 1, 2, 3, 0, 1, 2];
    const loss = (withBackward = false) =>
      scopeAsync(async () => {
        const l = crossEntropy(forward(c, params, Tensor.from(idsArr, [B * T], "i32"), Tensor.from(pos, [B * T], "i32"), B, T), Tensor.from(tgtArr, [B * T], "i32"));
        const v = (await l.toArray())[0]!;
        if (withBackward) backward(l);
        return v;
      });
    await loss(true);
    let checked = 0;
    for (const [name, p] of namedParams(params)) {
      const theta = (await p.toArray()) as Float32Array, g = (await p.grad!.toArray()) as Float32Array;
      const u = normals(rng, p.size, 1), h = 3e-4;
      writeBuffer(p.buffer, theta.map((x, i) => x + h * u[i]!));
      const fp = await noGrad(() => loss());
      writeBuffer(p.buffer, theta.map((x, i) => x - h * u[i]!));
      const fm = await noGrad(() => loss());
      writeBuffer(p.buffer, theta);
      const fd = (fp - fm) / (2 * h);
      let gu = 0;
      for (let i = 0; i < g.length; i++) gu += g[i]! * u[i]!;
      if (!(Math.abs(fd - gu) <= 1e-2 * Math.abs(gu) + 2e-3)) throw new Error(`${name}: finite differences ${fd}, backward ${gu}`);
      checked++;
    }
    expect(checked).toBe(namedParams(params).size);
    disposeParams(params);
  });
