// A tiny mixture-of-experts model through the command line: pretrain (the loss falls; aux_loss and
// expert_load_max in every step line), exact resume, greedy generation through the KV cache, and the
// checkpoint's Hugging Face names (mlp.gate, mlp.experts.{e}.*, mlp.shared_experts.*).
import { beforeAll, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { events, seqData, sh, tmp, TINY_MODEL } from "./helpers.ts";

const dir = tmp("moe");
let d: ReturnType<typeof seqData>;
const steps = (out: string) => events(out).filter((e) => e.event === "step");

// 4 experts, top 2, one shared expert; layer 0 dense (mlp_only_layers), layer 1 experts
const MOE = {
  ...TINY_MODEL,
  num_experts: 4,
  num_experts_per_tok: 2,
  moe_intermediate_size: 16,
  n_shared_experts: 1,
  norm_topk_prob: true,
  router_aux_loss_coef: 0.01,
  mlp_only_layers: [0],
};

beforeAll(() => {
  d = seqData(dir);
});

test("a tiny MoE pretrains, reports aux_loss and expert load, resumes bit for bit, generates", () => {
  const m = join(dir, "moe.json");
  writeFileSync(m, JSON.stringify(MOE));
  const a = sh([
    "cmd/pretrain.ts",
    "--data",
    d.data,
    "--out",
    join(dir, "a"),
    "--model",
    m,
    "--max-steps",
    "12",
    "--batch-size",
    "4",
    "--max-lr",
    "1e-2",
    "--warmup-steps",
    "2",
    "--ckpt-interval",
    "6",
    "--seed",
    "3",
  ]);
  expect(a.err).not.toContain("error");
  expect(a.code).toBe(0);
  const la = steps(a.out);
  expect(la).toHaveLength(12);
  const mean = (xs: any[]) => xs.reduce((a, e) => a + e.loss, 0) / xs.length;
  expect(mean(la.slice(9))).toBeLessThan(mean(la.slice(0, 3)) - 0.2);
  // coef · E · Σ_e f_e P_e with f_e = slots_e / N (Σ f = K): coef · K whatever the counts while the
  // router's probabilities are uniform, as they nearly are at initialization (std 0.02)
  expect(Math.abs(la[0].aux_loss - 0.01 * 2)).toBeLessThan(0.01 * 2 * 0.01);
  for (const e of la) {
    expect(e.aux_loss).toBeGreaterThan(0);
    expect(e.aux_loss).toBeLessThanOrEqual(0.01 * 4); // Σ f P ≤ max f ≤ 1
    // top-2 of 4: an expert gets between a quarter (balanced) and half (every token) of the slots
    expect(e.expert_load_max).toBeGreaterThanOrEqual(0.25);
    expect(e.expert_load_max).toBeLessThanOrEqual(0.5);
  }
  const b = sh(["cmd/pretrain.ts", "--resume", join(dir, "a", "step_000006"), "--out", join(dir, "b")]);
  expect(b.code).toBe(0);
  const lb = steps(b.out);
  const key = (e: any) => [e.loss, e.aux_loss, e.expert_load_max, e.grad_norm];
  expect(lb.map(key)).toEqual(la.slice(6).map(key));
  expect(
    readFileSync(join(dir, "a", "step_000012", "model.safetensors")).equals(
      readFileSync(join(dir, "b", "step_000012", "model.safetensors")),
    ),
  ).toBe(true);
  const cfg = JSON.parse(readFileSync(join(dir, "a", "latest", "config.json"), "utf8"));
  expect(cfg).toMatchObject({ num_experts: 4, num_experts_per_tok: 2, mlp_only_layers: [0] });
  const header = readFileSync(join(dir, "a", "latest", "model.safetensors"));
  const names = Object.keys(JSON.parse(header.subarray(8, 8 + Number(header.readBigUInt64LE(0))).toString()));
  expect(names).toContain("model.layers.1.mlp.gate.weight");
  expect(names).toContain("model.layers.1.mlp.experts.3.down_proj.weight");
  expect(names).toContain("model.layers.1.mlp.shared_experts.up_proj.weight");
  expect(names).toContain("model.layers.0.mlp.gate_proj.weight");
  expect(names).not.toContain("model.layers.1.mlp.gate_proj.weight");
  const g = sh([
    "cmd/generate.ts",
    "--ckpt",
    join(dir, "a", "latest"),
    "--prompt",
    "The river",
    "--max-new-tokens",
    "5",
    "--temperature",
    "0",
  ]);
  expect(g.code).toBe(0);
  expect(JSON.parse(g.out).ids).toHaveLength(5);
});
