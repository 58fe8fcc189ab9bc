// --optimizer muon through the command line: a tiny pretrain learns, its checkpoint holds Muon's
// momenta beside AdamW's moments and resumes bit for bit, and an optimizer mismatch on resume is refused.
import { beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { initGpu } from "../../lib/gpu/index.ts";
import { readHeader } from "../../lib/io/safetensors.ts";
import { events, seqData, sh, tmp } from "./helpers.ts";

const dir = tmp("muon");
let d: ReturnType<typeof seqData>;

beforeAll(async () => {
  await initGpu();
  d = seqData(dir);
});

const steps = (out: string) => events(out).filter((e) => e.event === "step");
const run = (out: string, extra: string[]) =>
  sh([
    "cmd/pretrain.ts",
    "--data",
    d.data,
    "--out",
    join(dir, out),
    "--model",
    d.model,
    "--batch-size",
    "4",
    "--max-lr",
    "1e-2",
    "--warmup-steps",
    "3",
    "--seed",
    "5",
    ...extra,
  ]);

describe("pretrain --optimizer muon", () => {
  test("loss falls; a 20-step run equals the same run resumed from step 10, bit for bit", () => {
    const a = run("a", ["--optimizer", "muon", "--max-steps", "20", "--ckpt-interval", "10"]);
    expect(a.code).toBe(0);
    const la = steps(a.out);
    expect(la.length).toBe(20);
    const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
    const first = mean(la.slice(0, 3).map((e) => e.loss)),
      last = mean(la.slice(-3).map((e) => e.loss));
    // ln(400) ≈ 6.0 at the start; 20 steps bring it to ~5.4 (AdamW alone: ~5.3)
    expect(last).toBeLessThan(first - 0.4);

    // the run's config (optimizer: muon) comes back with --resume
    const b = sh(["cmd/pretrain.ts", "--resume", join(dir, "a", "step_000010"), "--out", join(dir, "b")]);
    expect(b.code).toBe(0);
    const lb = steps(b.out);
    expect(lb.map((e) => e.step)).toEqual(Array.from({ length: 10 }, (_, i) => i + 11));
    for (const e of lb) {
      const twin = la.find((x) => x.step === e.step)!;
      expect(e.loss).toBe(twin.loss);
      expect(e.grad_norm).toBe(twin.grad_norm);
    }
    for (const f of ["model.safetensors", "optimizer.safetensors"])
      expect(
        readFileSync(join(dir, "a", "step_000020", f)).equals(readFileSync(join(dir, "b", "step_000020", f))),
      ).toBe(true);

    // Muon's momenta for the layers' 14 matrices (2 layers × q, k, v, o, gate, up, down); AdamW's
    // moments for the embedding (tied head) and the 5 norms
    const names = readHeader(join(dir, "a", "step_000020", "optimizer.safetensors")).tensors.map((t) => t.name);
    const muon = names.filter((n) => n.startsWith("muon_m."));
    expect(muon.length).toBe(14);
    expect(muon).toContain("muon_m.model.layers.1.mlp.down_proj.weight");
    expect(names.filter((n) => n.startsWith("m.")).sort()).toEqual(
      [
        "m.model.embed_tokens.weight",
        "m.model.norm.weight",
        "m.model.layers.0.input_layernorm.weight",
        "m.model.layers.0.post_attention_layernorm.weight",
        "m.model.layers.1.input_layernorm.weight",
        "m.model.layers.1.post_attention_layernorm.weight",
      ].sort(),
    );
  });

  test("an AdamW checkpoint resumed with --optimizer muon (and the reverse) is refused, naming both", () => {
    const a = run("adamw", ["--max-steps", "2"]);
    expect(a.code).toBe(0);
    const r = sh(["cmd/pretrain.ts", "--resume", join(dir, "adamw", "step_000002"), "--optimizer", "muon"]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(
      /optimizer\.safetensors: the state of --optimizer adamw, but this run has --optimizer muon; resume with --optimizer adamw/,
    );
    const back = sh(["cmd/pretrain.ts", "--resume", join(dir, "a", "step_000010"), "--optimizer", "adamw"]);
    expect(back.code).toBe(1);
    expect(back.err).toMatch(/the state of --optimizer muon, but this run has --optimizer adamw/);
  });
});
