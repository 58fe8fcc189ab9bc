// The example Makefile's dependencies: after touching only the SFT data, make redoes sft and what
// follows, nothing before. Checked with `make -t` (mark everything built) and `make -n` (list what
// would run) on a copy of examples/, so nothing is trained here.
import { expect, test } from "bun:test";
import { cpSync, mkdirSync, symlinkSync, utimesSync } from "node:fs";
import { join } from "node:path";
import { root, tmp } from "../train/helpers.ts";

function make(dir: string, args: string[]) {
  const p = Bun.spawnSync(["make", "-C", join(dir, "examples"), ...args], { env: { ...process.env } });
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
}

test("touching only the SFT data redoes sft and what follows", () => {
  const dir = tmp("make");
  cpSync(join(root, "examples"), join(dir, "examples"), { recursive: true });
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
  ])
    mkdirSync(join(run, d), { recursive: true });
  // inputs older than anything make -t creates
  const old = new Date(Date.now() - 60_000);
  for (const f of [
    "data/corpus_en.txt",
    "data/corpus_zh.txt",
    "data/chat.jsonl",
    "data/pairs.jsonl",
    "data/prompts.jsonl",
    "configs/model.json",
    "configs/pretrain.json",
    "configs/sft.json",
    "configs/dpo.json",
    "configs/grpo.json",
    "reward.ts",
    "samples.jsonl",
  ])
    utimesSync(join(dir, "examples", f), old, old);
  const t = make(dir, ["-t", `RUN=${run}`]);
  expect(t.code).toBe(0);
  expect(make(dir, ["-n", `RUN=${run}`]).out).toMatch(/Nothing to be done/);
  utimesSync(join(dir, "examples", "data", "chat.jsonl"), new Date(), new Date());
  const n = make(dir, ["-n", `RUN=${run}`]).out;
  for (const redo of ["pack.ts sft", "sft.ts", "dpo.ts", "grpo.ts", "show_samples.ts", "ckpt-inspect.ts", "plot.ts"])
    expect(n).toContain(redo);
  for (const keep of ["tokenize.ts", "pack.ts seq", "pack.ts dpo", "pack.ts grpo", "pretrain.ts --config"])
    expect(n).not.toContain(keep);
});
