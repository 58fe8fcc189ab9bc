// A LoRA SFT run through the commands: a tiny base pretrained, then `sft --init BASE --lora-rank 4`:
// the loss falls; the checkpoint holds PEFT's adapter files (no model weights) and optimizer state for
// the adapters only; a resume continues bit for bit; generate --adapter; ckpt-inspect on the adapter;
// merge, whose model generates the same greedy tokens as base + adapter.
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { readHeader } from "../../lib/io/safetensors.ts";
import { events, root, seqData, sh, tmp } from "./helpers.ts";

describe("LoRA sft", () => {
  test("train, checkpoint, resume, generate --adapter, inspect, merge", () => {
    const dir = tmp("lora");
    const { tok, data, model } = seqData(dir);
    const base = join(dir, "base");
    let r = sh(["cmd/pretrain.ts", "--data", data, "--model", model, "--out", base, "--max-steps", "2"]);
    expect(r.code, r.err).toBe(0);
    const sft = join(dir, "sft");
    r = sh([
      "cmd/pack.ts",
      "sft",
      "--tokenizer",
      tok,
      "--seq-len",
      "32",
      "--out",
      sft,
      join(root, "examples", "data", "chat.jsonl"),
    ]);
    expect(r.code, r.err).toBe(0);
    const common = ["--data", sft, "--lora-rank", "4", "--lora-alpha", "8", "--max-lr", "1e-2", "--batch-size", "4"];
    const run = join(dir, "run");
    r = sh([
      "cmd/sft.ts",
      "--init",
      join(base, "latest"),
      ...common,
      "--out",
      run,
      "--max-steps",
      "8",
      "--ckpt-interval",
      "4",
      "--keep",
      "5",
    ]);
    expect(r.code, r.err).toBe(0);
    const steps = events(r.out).filter((e) => e.event === "step");
    expect(steps.length).toBe(8);
    const mean = (a: any[]) => a.reduce((s, e) => s + e.loss, 0) / a.length;
    expect(mean(steps.slice(6))).toBeLessThan(mean(steps.slice(0, 2)) - 0.1);
    const ck = join(run, "step_000008");
    const files = readdirSync(ck).sort();
    expect(files).toContain("adapter_model.safetensors");
    expect(files).toContain("adapter_config.json");
    expect(files).not.toContain("model.safetensors");
    expect(files).not.toContain("config.json");
    const cfg = JSON.parse(readFileSync(join(ck, "adapter_config.json"), "utf8"));
    expect(cfg).toMatchObject({ peft_type: "LORA", task_type: "CAUSAL_LM", r: 4, lora_alpha: 8 });
    expect(cfg.target_modules).toEqual(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]);
    expect(cfg.base_model_name_or_path).toBe(join(base, "step_000002"));
    const adapterNames = readHeader(join(ck, "adapter_model.safetensors")).tensors.map((t) => t.name);
    expect(adapterNames.length).toBe(2 * 7 * 2);
    expect(adapterNames).toContain("base_model.model.model.layers.1.mlp.down_proj.lora_B.weight");
    const opt = readHeader(join(ck, "optimizer.safetensors"))
      .tensors.map((t) => t.name)
      .filter((n) => n !== "step");
    expect(opt.sort()).toEqual([...adapterNames.map((n) => `m.${n}`), ...adapterNames.map((n) => `v.${n}`)].sort());

    // resume from step 4: the same adapters at step 8, bit for bit
    const run2 = join(dir, "run2");
    r = sh(["cmd/sft.ts", "--resume", join(run, "step_000004"), "--out", run2, "--max-steps", "8"]);
    expect(r.code, r.err).toBe(0);
    const bytes = (d: string) => readFileSync(join(d, "adapter_model.safetensors"));
    expect(Buffer.compare(bytes(join(run2, "step_000008")), bytes(ck))).toBe(0);

    const gen = (args: string[]) => {
      const g = sh([
        "cmd/generate.ts",
        ...args,
        "--prompt-ids",
        "5,6,7",
        "--temperature",
        "0",
        "--max-new-tokens",
        "12",
      ]);
      expect(g.code, g.err).toBe(0);
      return events(g.out)[0].ids as number[];
    };
    const adapted = gen(["--adapter", ck]);
    expect(gen(["--ckpt", join(base, "latest"), "--adapter", ck])).toEqual(adapted);
    expect(gen(["--ckpt", join(base, "latest")])).not.toEqual(adapted);

    const ins = sh(["cmd/ckpt-inspect.ts", ck, "--json"]);
    expect(ins.code, ins.err).toBe(0);
    const summary = events(ins.out).at(-1);
    expect(summary.adapter).toEqual({
      rank: 4,
      alpha: 8,
      targets: cfg.target_modules,
      base: cfg.base_model_name_or_path,
    });
    expect(summary.tensors).toBe(28);
    expect(summary.integrity).toBe("ok");

    const merged = join(dir, "merged");
    r = sh(["cmd/merge.ts", "--adapter", ck, "--out", merged]);
    expect(r.code, r.err).toBe(0);
    expect(existsSync(join(merged, "model.safetensors"))).toBe(true);
    expect(gen(["--ckpt", merged])).toEqual(adapted);

    // eval and chat take the adapter the same way: eval's perplexity of the adapted model equals the
    // merged model's (within f32 rounding of the merge), and differs from the base's
    const text = join(root, "examples", "data", "bilingual.txt");
    const ppl = (flags: string[]) => {
      const e = sh(["cmd/eval.ts", ...flags, "--text", text, "--lines"]);
      expect(e.code, e.err).toBe(0);
      return events(e.out)[0].perplexity as number;
    };
    const pa = ppl(["--adapter", ck]);
    expect(Math.abs(pa - ppl(["--ckpt", merged])) / pa).toBeLessThan(1e-5);
    expect(ppl(["--ckpt", join(base, "latest")])).not.toBe(pa);
    const c = Bun.spawnSync(
      [process.execPath, "cmd/chat.ts", "--adapter", ck, "--max-new-tokens", "4", "--temperature", "0"],
      {
        cwd: root,
        stdin: new TextEncoder().encode("The river\n"),
      },
    );
    expect(c.exitCode, c.stderr.toString()).toBe(0);
    expect(events(c.stdout.toString())[0].turn).toBe(1);
  });

  test("dpo and grpo with adapters: the reference is the base without them; only adapters change", () => {
    const dir = tmp("lora-rl");
    const { tok, data, model } = seqData(dir);
    const base = join(dir, "base");
    let r = sh(["cmd/pretrain.ts", "--data", data, "--model", model, "--out", base, "--max-steps", "2"]);
    expect(r.code, r.err).toBe(0);
    const pack = (type: string, file: string, L: string) => {
      const out = join(dir, `${type}-data`);
      const p = sh([
        "cmd/pack.ts",
        type,
        "--tokenizer",
        tok,
        "--seq-len",
        L,
        "--out",
        out,
        join(root, "examples", "data", file),
      ]);
      expect(p.code, p.err).toBe(0);
      return out;
    };
    const lora = ["--init", join(base, "latest"), "--lora-rank", "4", "--max-steps", "2", "--batch-size", "2"];
    r = sh(["cmd/dpo.ts", ...lora, "--data", pack("dpo", "pairs.jsonl", "48"), "--out", join(dir, "dpo")]);
    expect(r.code, r.err).toBe(0);
    // step 1: the policy is the reference (B = 0), so DPO's loss is ln 2 and the margins 0
    const d1 = events(r.out).find((e) => e.event === "step" && e.step === 1);
    expect(d1.loss).toBeCloseTo(Math.LN2, 5);
    expect(readdirSync(join(dir, "dpo", "latest"))).toContain("adapter_model.safetensors");
    r = sh([
      "cmd/grpo.ts",
      ...lora,
      "--data",
      pack("grpo", "prompts.jsonl", "32"),
      "--out",
      join(dir, "grpo"),
      "--group-size",
      "2",
      "--max-new-tokens",
      "4",
      "--reward",
      join(root, "examples", "reward.ts"),
    ]);
    expect(r.code, r.err).toBe(0);
    expect(events(r.out).filter((e) => e.event === "step").length).toBe(2);
    expect(readdirSync(join(dir, "grpo", "latest"))).toContain("adapter_model.safetensors");
    // Muon is for whole hidden matrices: refused with adapters, before anything runs
    r = sh(["cmd/sft.ts", ...lora, "--optimizer", "muon", "--data", data, "--out", join(dir, "muon")]);
    expect(r.code).toBe(1);
    expect(r.err).toContain("--optimizer muon and --lora-rank exclude each other");
  });
});
