// Every training strategy starts from a checkpoint in a Hugging Face family's layout (written by
// scripts/tiny_hf_model.ts: bf16 weights, the family's config.json) and saves back in it; a run saved in
// bf16 resumes bit for bit from the f32 masters its checkpoints keep beside the optimizer state.
import { beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { readHeader } from "../../lib/io/safetensors.ts";
import { events, root, seqData, sh, tmp } from "./helpers.ts";

const dir = tmp("families-train");
let d: { tok: string; data: string; model: string };

function family(name: string): string {
  const out = join(dir, `hf-${name}`);
  const r = sh(["scripts/tiny_hf_model.ts", "--family", name, "--tokenizer", d.tok, "--out", out, "--hidden", "32"]);
  if (r.code !== 0) throw new Error(r.err);
  return out;
}

function pack(type: string, file: string, L: number): string {
  const out = join(dir, type);
  const r = sh([
    "cmd/pack.ts",
    type,
    "--tokenizer",
    d.tok,
    "--seq-len",
    String(L),
    "--out",
    out,
    join(root, "examples", "data", file),
  ]);
  if (r.code !== 0) throw new Error(r.err);
  return out;
}

/** The checkpoint keeps the family's layout: its model_type, bf16 weights and f32 masters. */
function expectLayout(ckpt: string, modelType: string) {
  const cfg = JSON.parse(readFileSync(join(ckpt, "config.json"), "utf8"));
  expect([cfg.model_type, cfg.torch_dtype]).toEqual([modelType, "bfloat16"]);
  expect(new Set(readHeader(join(ckpt, "model.safetensors")).tensors.map((t) => t.dtype))).toEqual(new Set(["BF16"]));
  expect(readHeader(join(ckpt, "optimizer.safetensors")).tensors.some((t) => t.name.startsWith("master."))).toBe(true);
}

const steps = (out: string) => events(out).filter((e) => e.event === "step");

beforeAll(() => {
  d = seqData(dir);
});

describe("training from Hugging Face families", () => {
  test("qwen3: pretrain in bf16 resumes bit for bit from its step-3 checkpoint", () => {
    const init = family("qwen3");
    const run = (out: string, extra: string[]) =>
      sh([
        "cmd/pretrain.ts",
        "--data",
        d.data,
        "--out",
        join(dir, out),
        "--max-steps",
        "6",
        "--batch-size",
        "4",
        ...extra,
      ]);
    const a = run("q3a", ["--init", init, "--ckpt-interval", "3", "--max-lr", "3e-3"]);
    expect(a.code).toBe(0);
    const b = sh(["cmd/pretrain.ts", "--resume", join(dir, "q3a", "step_000003"), "--out", join(dir, "q3b")]);
    expect(b.code).toBe(0);
    const la = steps(a.out),
      lb = steps(b.out);
    expect(lb.map((e) => e.step)).toEqual([4, 5, 6]);
    for (const e of lb) expect(e.loss).toBe(la.find((x) => x.step === e.step)!.loss);
    expect(la[5].loss).toBeLessThan(la[0].loss);
    const fa = readFileSync(join(dir, "q3a", "step_000006", "model.safetensors"));
    expect(fa.equals(readFileSync(join(dir, "q3b", "step_000006", "model.safetensors")))).toBe(true);
    expectLayout(join(dir, "q3a", "latest"), "qwen3");
  });

  test("qwen2 sft, mistral dpo, deepseek_v2 grpo: each trains, saves in its layout and generates", () => {
    const sft = pack("sft", "chat.jsonl", 48),
      dpo = pack("dpo", "pairs.jsonl", 48),
      grpo = pack("grpo", "prompts.jsonl", 32);
    const common = ["--max-steps", "2", "--batch-size", "2", "--max-lr", "1e-3"];
    const runs: [string, string, string, string[]][] = [
      ["qwen2", "sft", sft, []],
      ["mistral", "dpo", dpo, []],
      [
        "deepseek_v2",
        "grpo",
        grpo,
        ["--group-size", "2", "--max-new-tokens", "4", "--reward", join(root, "examples", "reward.ts")],
      ],
    ];
    for (const [fam, cmd, data, extra] of runs) {
      const out = join(dir, `${fam}-${cmd}`);
      const r = sh([`cmd/${cmd}.ts`, "--init", family(fam), "--data", data, "--out", out, ...common, ...extra]);
      if (r.code !== 0) throw new Error(`${fam} ${cmd}: ${r.err}`);
      const s = steps(r.out);
      expect(s.map((e) => e.step)).toEqual([1, 2]);
      for (const e of s) expect(Number.isFinite(e.loss)).toBe(true);
      expectLayout(join(out, "latest"), fam);
      // the sampling defaults of the model the stage started from travel with the checkpoint
      const gen = JSON.parse(readFileSync(join(out, "latest", "generation_config.json"), "utf8"));
      expect(gen).toMatchObject({ temperature: 0.7, top_p: 0.8, repetition_penalty: 1.05, _from_model_config: false });
      const g = sh([
        "cmd/generate.ts",
        "--ckpt",
        join(out, "latest"),
        "--prompt",
        "The river",
        "--max-new-tokens",
        "3",
        "--temperature",
        "0",
      ]);
      if (g.code !== 0) throw new Error(`${fam} generate: ${g.err}`);
      expect(events(g.out)[0].ids.length).toBeGreaterThan(0);
    }
  });
});
