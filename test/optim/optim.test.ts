import { beforeAll, describe, expect, test } from "bun:test";
import { initGpu } from "../../lib/gpu/index.ts";
import { Tensor, scopeAsync, keep } from "../../lib/tensor/index.ts";
import { AdamW, adamwRef, ADAMW_DEFAULTS, decays } from "../../lib/optim/adamw.ts";
import { gradNormRef } from "../../lib/optim/grad_norm.ts";
import { lrAt, type ScheduleConfig } from "../../lib/optim/schedule.ts";
import { randn, expectAllClose } from "../lib/close.ts";

beforeAll(async () => {
  await initGpu();
});

describe("schedules against their formulas", () => {
  const base = { maxLr: 1e-3, minRate: 0.1, warmup: 10, totalSteps: 110 };
  const cos = (f: number) => 1e-4 + 0.5 * (1e-3 - 1e-4) * (1 + Math.cos(Math.PI * f));
  test("warmup is linear from 0", () => {
    for (const name of ["cosine", "sgdr", "wsd", "constant"] as const) {
      expect(lrAt(1, { ...base, name })).toBeCloseTo(1e-4, 12);
      expect(lrAt(5, { ...base, name })).toBeCloseTo(5e-4, 12);
      expect(lrAt(10, { ...base, name })).toBeCloseTo(1e-3, 12);
    }
  });
  test("cosine", () => {
    const c: ScheduleConfig = { ...base, name: "cosine" };
    expect(lrAt(35, c)).toBeCloseTo(cos(0.25), 12);
    expect(lrAt(60, c)).toBeCloseTo(cos(0.5), 12);
    expect(lrAt(110, c)).toBeCloseTo(1e-4, 12);
  });
  test("sgdr: cycles of 20, 40 with t_mult 2, each restarting at max", () => {
    const c: ScheduleConfig = { ...base, name: "sgdr", cycle: 20, tMult: 2 };
    expect(lrAt(20, c)).toBeCloseTo(cos(0.5), 12); // t = 10 of the first cycle of 20
    expect(lrAt(30, c)).toBeCloseTo(1e-4, 12); // end of cycle 1
    expect(lrAt(31, c)).toBeCloseTo(cos(1 / 40), 12); // restart
    expect(lrAt(50, c)).toBeCloseTo(cos(0.5), 12);
  });
  test("wsd: stable, then linear decay over the last 20%", () => {
    const c: ScheduleConfig = { ...base, name: "wsd", decayFraction: 0.2 };
    expect(lrAt(90, c)).toBe(1e-3);
    expect(lrAt(100, c)).toBeCloseTo(1e-3 - 0.5 * 9e-4, 12);
    expect(lrAt(110, c)).toBeCloseTo(1e-4, 12);
  });
});

describe("AdamW", () => {
  test("three clipped steps match the reference arithmetic (torch.optim.AdamW's)", async () => {
    const n = 1000;
    const P = randn(n, 1),
      grads = [randn(n, 2), randn(n, 3), randn(n, 4)].map((g) => g.map((x) => x * 3));
    const cfg = { ...ADAMW_DEFAULTS, gradClip: 5 };
    const p = keep(Tensor.from(P, [25, 40]).param());
    const opt = new AdamW(["model.layers.0.mlp.up_proj.weight"], [p], cfg);
    let ref = { p: P, m: new Float32Array(n), v: new Float32Array(n) };
    const lrs = [1e-3, 5e-4, 2e-4];
    for (let s = 0; s < 3; s++) {
      await scopeAsync(async () => {
        p.grad = keep(Tensor.from(grads[s]!, [25, 40]));
        opt.computeNorm();
        opt.update(lrs[s]!);
        const norm = gradNormRef([grads[s]!]);
        const [gotNorm] = await opt.norm.stats.toArray();
        expect(gotNorm!).toBeCloseTo(norm, 3);
        ref = adamwRef(ref.p, grads[s]!, ref.m, ref.v, s + 1, lrs[s]!, cfg, 0.1, Math.min(1, 5 / (norm + 1e-6)));
        p.grad.dispose();
        p.grad = null;
      });
    }
    expectAllClose(await p.toArray(), ref.p, { atol: 1e-7, rtol: 1e-5, label: "params" });
    expectAllClose(await opt.m[0]!.toArray(), ref.m, { atol: 1e-7, rtol: 1e-5, label: "m" });
    expectAllClose(await opt.v[0]!.toArray(), ref.v, { atol: 1e-9, rtol: 1e-5, label: "v" });
    opt.dispose();
    p.dispose();
  });

  test("weight decay skips norms and embeddings", () => {
    expect(decays("model.layers.0.self_attn.q_proj.weight", [4, 4])).toBe(true);
    expect(decays("lm_head.weight", [4, 4])).toBe(true);
    expect(decays("model.embed_tokens.weight", [4, 4])).toBe(false);
    expect(decays("model.norm.weight", [4])).toBe(false);
    expect(decays("model.layers.0.input_layernorm.weight", [4])).toBe(false);
  });

  test("the reference is torch's AdamW: one step by hand", () => {
    // p=1, g=0.5, lr=0.1, wd=0.1, β=(0.9, 0.95), eps=1e-8: p·(1-0.01) - 0.1·0.05/0.1 / (sqrt(0.0125/0.05)+eps)
    const r = adamwRef(
      Float32Array.of(1),
      Float32Array.of(0.5),
      Float32Array.of(0),
      Float32Array.of(0),
      1,
      0.1,
      ADAMW_DEFAULTS,
      0.1,
    );
    expect(r.p[0]!).toBeCloseTo(0.99 - (0.1 * (0.05 / 0.1)) / (Math.sqrt(0.0125 / 0.05) + 1e-8), 6);
  });
});
