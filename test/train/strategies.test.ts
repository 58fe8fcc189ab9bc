// Each strategy's loss and gradient on a tiny model against values computed independently: the
// sequence log-probs come from the model's logits read back and log-softmaxed on the host, the
// losses from their formulas written out here, and the gradients are checked along random directions
// by central finite differences of that independent loss (h and tolerance in test/lib/gradcheck.ts).
import { beforeAll, describe, expect, test } from "bun:test";
import { initGpu, writeBuffer } from "../../lib/gpu/index.ts";
import { Tensor, scopeAsync, noGrad } from "../../lib/tensor/index.ts";
import { parseModelConfig } from "../../lib/model/config.ts";
import { initParams, namedParams, disposeParams } from "../../lib/model/params.ts";
import { forward, plainPositions } from "../../lib/model/transformer.ts";
import { nextTokenStrategy } from "../../lib/train/strategies/seq.ts";
import { dpoStrategy, dpoTerms } from "../../lib/train/strategies/dpo.ts";
import { grpoStrategy, grpoToken, groupAdvantages } from "../../lib/train/strategies/grpo.ts";
import { Rng } from "../../lib/base/rng.ts";
import { IGNORE_INDEX, crossEntropyRef } from "../../lib/ops/cross_entropy.ts";
import { checkDirectional } from "../lib/gradcheck.ts";
import { backward } from "../../lib/ops/backward.ts";

beforeAll(async () => {
  await initGpu();
});

const V = 61,
  L = 8;
const cfg = parseModelConfig({
  vocab_size: V,
  hidden_size: 32,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  intermediate_size: 48,
  max_position_embeddings: 64,
});

function logSoftmaxRows(z: Float32Array, rows: number): Float64Array {
  const out = new Float64Array(z.length);
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    for (let v = 0; v < V; v++) m = Math.max(m, z[r * V + v]!);
    let s = 0;
    for (let v = 0; v < V; v++) s += Math.exp(z[r * V + v]! - m);
    for (let v = 0; v < V; v++) out[r * V + v] = z[r * V + v]! - m - Math.log(s);
  }
  return out;
}

/** host log p(seq[t+1] | seq[..t]) for every t, from the model's logits */
async function hostLogprobs(params: any, seqs: Int32Array, R: number): Promise<Float64Array> {
  const z = await scopeAsync(() =>
    noGrad(() =>
      forward(cfg, params, Tensor.from(seqs, [R * L], "i32"), Tensor.from(plainPositions(R, L), [R * L], "i32"), R, L),
    ).toArray(),
  );
  const ls = logSoftmaxRows(z as Float32Array, R * L);
  const out = new Float64Array(R * L);
  for (let r = 0; r < R; r++)
    for (let t = 0; t + 1 < L; t++) out[r * L + t] = ls[(r * L + t) * V + seqs[r * L + t + 1]!]!;
  return out;
}

function fakeTrainer(params: any, extra: Record<string, unknown> = {}): any {
  return {
    model: cfg,
    params,
    seqLen: L,
    stageInit: null,
    initModel: null,
    backward: (loss: any, dloss?: any) => backward(loss, dloss),
    cfg: { label_smoothing: 0, beta: 0.1, reduction: "sum", clip_eps: 0.2, kl_coef: 0.05, resume: undefined, ...extra },
  };
}

function perturb(params: any, seed: number) {
  const rng = new Rng(seed);
  return Promise.all(
    [...namedParams(params).values()].map(async (p) =>
      writeBuffer(
        p.buffer,
        ((await p.toArray()) as Float32Array).map((x) => x + 0.05 * (rng.next() - 0.5)),
      ),
    ),
  );
}

describe("sft", () => {
  test("loss only on loss_mask targets, normalized by the window's count", async () => {
    const params = initParams({ ...cfg, initializer_range: 0.3 }, 1);
    const rng = new Rng(2),
      n = 2;
    const ids = Int32Array.from({ length: n * L }, () => rng.int(V)),
      tgt = Int32Array.from({ length: n * L }, () => rng.int(V));
    const mask = Uint8Array.from({ length: n * L }, (_, i) => (i % 3 === 1 ? 1 : 0));
    const pos = plainPositions(n, L);
    const s = nextTokenStrategy("sft", true);
    const rows = { input_ids: ids, target_ids: tgt, loss_mask: mask, position_ids: pos };
    const windowCount = 11; // as if more micro-batches shared the window
    const got = await scopeAsync(async () => {
      const r = await s.batch(fakeTrainer(params), rows, new Uint32Array(n), windowCount);
      return (await (r.loss as Tensor).toArray())[0]!;
    });
    const z = await scopeAsync(() =>
      noGrad(() =>
        forward(cfg, params, Tensor.from(ids, [n * L], "i32"), Tensor.from(pos, [n * L], "i32"), n, L),
      ).toArray(),
    );
    const t = Int32Array.from(tgt, (x, i) => (mask[i] ? x : IGNORE_INDEX));
    const want = crossEntropyRef(z as Float32Array, t, n * L, V, { normalizer: windowCount }).loss;
    expect(Math.abs(got - want)).toBeLessThan(1e-5 * want);
    expect(s.count(rows, n)).toBe(mask.reduce((a, b) => a + b, 0));
    disposeParams(params);
  });
});

describe("dpo", () => {
  test("loss and gradient against the formula on host log-probs", async () => {
    const params = initParams({ ...cfg, initializer_range: 0.3 }, 3);
    const s = dpoStrategy();
    const t = fakeTrainer(params);
    await s.init!(t); // reference = the starting weights
    await perturb(params, 4); // the policy moves away from it
    const rng = new Rng(5),
      n = 2;
    const chosen = Int32Array.from({ length: n * L }, () => rng.int(V)),
      rejected = Int32Array.from({ length: n * L }, () => rng.int(V));
    const cm = Uint8Array.from({ length: n * L }, (_, i) => (i % L >= 3 ? 1 : 0)),
      rm = Uint8Array.from({ length: n * L }, (_, i) => (i % L >= 4 ? 1 : 0));
    const rows = { chosen, rejected, chosen_mask: cm, rejected_mask: rm };
    const seqSums = (lp: Float64Array, mask: Uint8Array) =>
      Array.from({ length: n }, (_, r) => {
        let a = 0;
        for (let t2 = 0; t2 + 1 < L; t2++) if (mask[r * L + t2 + 1]) a += lp[r * L + t2]!;
        return a;
      });
    const refParams = initParams({ ...cfg, initializer_range: 0.3 }, 3);
    const refC = seqSums(await hostLogprobs(refParams, chosen, n), cm),
      refR = seqSums(await hostLogprobs(refParams, rejected, n), rm);
    const independent = async () => {
      const pc = seqSums(await hostLogprobs(params, chosen, n), cm),
        pr = seqSums(await hostLogprobs(params, rejected, n), rm);
      let l = 0;
      for (let i = 0; i < n; i++) {
        const z = 0.1 * (pc[i]! - refC[i]! - (pr[i]! - refR[i]!));
        l += Math.log1p(Math.exp(-z));
      }
      return l / n;
    };
    const got = await scopeAsync(() => s.batch(t, rows, new Uint32Array(n), n));
    const want = await independent();
    expect(Math.abs((got.loss as number) - want)).toBeLessThan(1e-5);
    expect(got.metrics!["rewards/margins"]!).toBeCloseTo(
      got.metrics!["rewards/chosen"]! - got.metrics!["rewards/rejected"]!,
      10,
    );
    await checkDirectional(params, independent, new Rng(6));
    s.dispose!();
    disposeParams(params);
    disposeParams(refParams);
  });

  test("the per-pair terms", () => {
    const d = dpoTerms([-3], [-5], [-4], [-4], 0.5);
    // z = 0.5·((-3+4) - (-5+4)) = 1
    expect(d.loss[0]!).toBeCloseTo(Math.log1p(Math.exp(-1)), 12);
    expect(d.dz[0]!).toBeCloseTo(-1 / (1 + Math.exp(1)), 12);
    expect(d.rc[0]!).toBeCloseTo(0.5, 12);
    expect(d.rr[0]!).toBeCloseTo(-0.5, 12);
  });
});

describe("grpo", () => {
  test("group advantages and the per-token terms", () => {
    const { adv, std } = groupAdvantages([1, 0, 0, 1, 2, 2, 2, 2], 4);
    const s = Math.sqrt(1 / 3);
    expect(std[0]!).toBeCloseTo(s, 12);
    expect(adv.slice(0, 4).map((x) => +x.toFixed(9))).toEqual(
      [0.5, -0.5, -0.5, 0.5].map((x) => +(x / (s + 1e-4)).toFixed(9)),
    );
    expect(std[1]).toBe(0);
    expect(adv.slice(4)).toEqual([0, 0, 0, 0]);
    // ratio 1.5 > 1 + ε with A > 0: clipped, no gradient from the surrogate
    const a = grpoToken(Math.log(1.5), 0, -0.1, 2, 0.2, 0.1);
    expect(a.clipped).toBe(true);
    expect(a.loss).toBeCloseTo(-(1.2 * 2 - 0.1 * (Math.exp(-0.1 - Math.log(1.5)) - (-0.1 - Math.log(1.5)) - 1)), 12);
    // inside the clip range the derivative is -ratio·A + β(1 - exp(ref - logp)); check it numerically
    const f = (lp: number) => grpoToken(lp, -1.0, -1.2, -0.7, 0.2, 0.3).loss;
    const d = grpoToken(-0.95, -1.0, -1.2, -0.7, 0.2, 0.3).dlogp;
    expect(d).toBeCloseTo((f(-0.95 + 1e-6) - f(-0.95 - 1e-6)) / 2e-6, 6);
  });

  test("offline loss and gradient against the formula on host log-probs", async () => {
    const params = initParams({ ...cfg, initializer_range: 0.3 }, 7);
    const G = 2,
      Lp = 3,
      R = 4;
    const data: any = { manifest: { keys: { responses: {} }, group_size: G, tokenizer: { pad_id: 0 } } };
    const s = grpoStrategy(data, G);
    const t = fakeTrainer(params, { data: "x" });
    t.data = data;
    t.seqLen = Lp;
    await s.init!(t);
    await perturb(params, 8);
    const prompts = Int32Array.from([5, 6, 7]),
      prompt_mask = Uint8Array.from([1, 1, 1]);
    const responses = Int32Array.from([9, 10, 11, 12, 13, 14, 0, 0]),
      masks = Uint8Array.from([1, 1, 1, 1, 1, 1, 0, 0]);
    const rewards = Float32Array.from([1, 0]);
    const rows = { prompts, prompt_mask, responses, masks, rewards };
    const { adv } = groupAdvantages([1, 0], G);
    const Lmax = Lp + R;
    const seqs = Int32Array.from([5, 6, 7, 9, 10, 11, 12, 5, 6, 7, 13, 14, 0, 0]);
    const refParams = initParams({ ...cfg, initializer_range: 0.3 }, 7);
    const lensResp = [4, 2];
    const tokenLp = async (p: any) => {
      const out: number[][] = [];
      const z = await scopeAsync(() =>
        noGrad(() =>
          forward(
            cfg,
            p,
            Tensor.from(seqs, [2 * Lmax], "i32"),
            Tensor.from(plainPositions(2, Lmax), [2 * Lmax], "i32"),
            2,
            Lmax,
          ),
        ).toArray(),
      );
      const ls = logSoftmaxRows(z as Float32Array, 2 * Lmax);
      for (let i = 0; i < 2; i++)
        out.push(
          Array.from({ length: lensResp[i]! }, (_, k) => ls[(i * Lmax + Lp - 1 + k) * V + seqs[i * Lmax + Lp + k]!]!),
        );
      return out;
    };
    const ref = await tokenLp(refParams);
    // offline: logp_old is the current logp without gradient, so ratio = 1 but its gradient is not
    const oldLp = await tokenLp(params);
    const independent = async () => {
      const lp = await tokenLp(params);
      let loss = 0;
      lp.forEach((row, i) => {
        let li = 0;
        row.forEach((x, k) => {
          const ratio = Math.exp(x - oldLp[i]![k]!);
          const obj = Math.min(ratio * adv[i]!, Math.min(Math.max(ratio, 0.8), 1.2) * adv[i]!);
          const kl = Math.exp(ref[i]![k]! - x) - (ref[i]![k]! - x) - 1;
          li += -(obj - 0.05 * kl);
        });
        loss += li / row.length;
      });
      return loss / 2;
    };
    const got = await scopeAsync(() => s.batch(t, rows, new Uint32Array([0]), 2));
    expect(Math.abs((got.loss as number) - (await independent()))).toBeLessThan(1e-5);
    expect(got.metrics!.reward).toBeCloseTo(0.5, 12);
    await checkDirectional(params, independent, new Rng(9));
    s.dispose!();
    disposeParams(params);
    disposeParams(refParams);
  });
});
