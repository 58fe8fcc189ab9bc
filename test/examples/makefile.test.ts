// The example Makefile's dependencies: after touching only the SFT data, make redoes sft and what
// follows, nothing before; after touching only the held-out questions, it redoes the four accuracy
// checks and no training. Checked with `make -t` (mark everything built) and `make -n` (list what
// would run) on a copy of examples/, so nothing is trained here.
import { expect, test } from "bun:test";
import { cpSync, mkdirSync, symlinkSync, utimesSync } from "node:fs";
import { join } from "node:path";
import { root, tmp } from "../train/helpers.ts";

function make(dir: string, args: string[]) {
  const p = Bun.spawnSync(["make", "-C", join(dir, "examples"), ...args], { env: { ...process.env } });
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
}

/** A copy of examples/ whose every target is marked built (make -t), inputs older than all of them. */
function built(): { dir: string; run: string } {
  const dir = tmp("make");
  // the inputs only: a demo run in examples/runs is tens of megabytes that make -t would not look at
  const runs = join(root, "examples", "runs");
  cpSync(join(root, "examples"), join(dir, "examples"), { recursive: true, filter: (src) => !src.startsWith(runs) });
  symlinkSync(join(root, "cmd"), join(dir, "cmd"));
  const run = join(dir, "run");
  for (const d of [
    "tok",
    "seq",
    "sft",
    "dpo",
    "grpo",
    "pt/latest",
    "sft-run/latest",
    "dpo-run/latest",
    "grpo-run/latest",
    "untrained/latest",
    "eval",
  ])
    mkdirSync(join(run, d), { recursive: true });
  // inputs older than anything make -t creates
  const old = new Date(Date.now() - 60_000);
  for (const f of [
    "data/corpus_en.txt",
    "data/corpus_zh.txt",
    "data/sums.txt",
    "data/chat.jsonl",
    "data/pairs.jsonl",
    "data/prompts.jsonl",
    "data/heldout.jsonl",
    "configs/model.json",
    "configs/pretrain.json",
    "configs/sft.json",
    "configs/dpo.json",
    "configs/grpo.json",
    "reward.ts",
    "accuracy.ts",
    "samples.jsonl",
  ])
    utimesSync(join(dir, "examples", f), old, old);
  const t = make(dir, ["-t", `RUN=${run}`]);
  expect(t.code).toBe(0);
  expect(make(dir, ["-n", `RUN=${run}`]).out).toMatch(/Nothing to be done/);
  return { dir, run };
}

test("touching only the SFT data redoes sft and what follows", () => {
  const { dir, run } = built();
  utimesSync(join(dir, "examples", "data", "chat.jsonl"), new Date(), new Date());
  const n = make(dir, ["-n", `RUN=${run}`]).out;
  for (const redo of [
    "pack.ts sft",
    "sft.ts",
    "dpo.ts",
    "grpo.ts",
    "--stage sft",
    "--stage dpo",
    "--stage grpo",
    "show_samples.ts",
    "ckpt-inspect.ts",
    "plot.ts",
  ])
    expect(n).toContain(redo);
  for (const keep of [
    "tokenize.ts",
    "pack.ts seq",
    "pack.ts dpo",
    "pack.ts grpo",
    "pretrain.ts --config",
    "--stage pt",
  ])
    expect(n).not.toContain(keep);
});

test("touching only the held-out questions redoes the four accuracy checks and no training", () => {
  const { dir, run } = built();
  utimesSync(join(dir, "examples", "data", "heldout.jsonl"), new Date(), new Date());
  const n = make(dir, ["-n", `RUN=${run}`]).out;
  for (const stage of ["pt", "sft", "dpo", "grpo"]) expect(n).toContain(`accuracy.ts --stage ${stage} `);
  expect(n).toContain(`cat ${run}/eval/pt.json ${run}/eval/sft.json ${run}/eval/dpo.json ${run}/eval/grpo.json`);
  for (const keep of ["tokenize.ts", "pack.ts", "pretrain.ts", "sft.ts", "dpo.ts", "grpo.ts", "show_samples.ts"])
    expect(n).not.toContain(keep);
});
