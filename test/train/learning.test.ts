// Each command moves its own metric the right way on a small task:
//   pretrain: validation loss falls well below the unigram entropy of the training tokens;
//   dpo: preference accuracy and margin rise;  grpo: mean reward rises on a checkable reward.
import { beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Rng } from "../../lib/base/rng.ts";
import { readKey } from "../../lib/data/shards.ts";
import { events, sh, tmp, TINY_MODEL } from "./helpers.ts";

const dir = tmp("learn");
const model = join(dir, "model.json");
let tok = "";

// sentences from a small grammar: plenty of structure for a tiny model to find
function grammar(n: number, seed: number): string[] {
  const rng = new Rng(seed);
  const pick = (a: string[]) => a[rng.int(a.length)]!;
  const S = ["the cat", "a dog", "the bird", "my friend", "the old man"],
    Vb = ["sees", "likes", "finds", "follows"];
  const O = ["the ball", "a tree", "the river", "some bread"],
    P = ["today", "at night", "in the park", "again"];
  return Array.from({ length: n }, () => `${pick(S)} ${pick(Vb)} ${pick(O)} ${pick(P)}.`);
}

beforeAll(() => {
  writeFileSync(join(dir, "corpus.txt"), grammar(600, 1).join("\n") + "\n");
  writeFileSync(model, JSON.stringify({ ...TINY_MODEL, hidden_size: 48, intermediate_size: 128 }));
  tok = join(dir, "tok");
  const r = sh(["cmd/tokenize.ts", "train", "--vocab-size", "330", "--out", tok, "--lines", join(dir, "corpus.txt")]);
  if (r.code !== 0) throw new Error(r.err);
});

describe("learning", () => {
  test("pretrain: validation loss falls well below the unigram entropy", () => {
    const data = join(dir, "seq");
    expect(
      sh([
        "cmd/pack.ts",
        "seq",
        "--tokenizer",
        tok,
        "--seq-len",
        "32",
        "--out",
        data,
        "--val-fraction",
        "0.1",
        "--lines",
        join(dir, "corpus.txt"),
      ]).code,
    ).toBe(0);
    const ids = readKey(data, "train", "target_ids").data as Int32Array;
    const counts = new Map<number, number>();
    for (const x of ids) counts.set(x, (counts.get(x) ?? 0) + 1);
    let H = 0;
    for (const c of counts.values()) H -= (c / ids.length) * Math.log(c / ids.length);
    const r = sh([
      "cmd/pretrain.ts",
      "--data",
      data,
      "--out",
      join(dir, "pt"),
      "--model",
      model,
      "--max-steps",
      "150",
      "--batch-size",
      "8",
      "--max-lr",
      "3e-3",
      "--warmup-steps",
      "10",
      "--eval-interval",
      "150",
      "--log-interval",
      "50",
    ]);
    expect(r.code).toBe(0);
    const ev = events(r.out).filter((e) => e.event === "eval");
    const val = ev[ev.length - 1].val_loss;
    console.error(`unigram entropy ${H.toFixed(3)} nats/token, validation loss after 150 steps ${val.toFixed(3)}`);
    expect(val).toBeLessThan(0.6 * H);
  }, 300_000);

  test("dpo: accuracy and margin rise", () => {
    const rng = new Rng(3);
    const rows = grammar(64, 2).map((s) => ({
      prompt: s.split(" ").slice(0, 3).join(" "),
      chosen: " likes the river today.",
      rejected: " sees some bread again.",
    }));
    // reward must come from preference, not from the text: swap sides for half of the rows' contents
    for (const r of rows)
      if (rng.next() < 0.5) [r.chosen, r.rejected] = [" finds a tree at night.", " follows the ball in the park."];
    writeFileSync(join(dir, "pairs.jsonl"), rows.map((r) => JSON.stringify(r)).join("\n") + "\n");
    const data = join(dir, "dpo");
    expect(
      sh(["cmd/pack.ts", "dpo", "--tokenizer", tok, "--seq-len", "24", "--out", data, join(dir, "pairs.jsonl")]).code,
    ).toBe(0);
    const r = sh([
      "cmd/dpo.ts",
      "--data",
      data,
      "--out",
      join(dir, "dpo-run"),
      "--model",
      model,
      "--max-steps",
      "24",
      "--batch-size",
      "8",
      "--max-lr",
      "2e-3",
      "--schedule",
      "constant",
      "--beta",
      "0.1",
    ]);
    expect(r.code).toBe(0);
    const st = events(r.out).filter((e) => e.event === "step");
    const first = st.slice(0, 4),
      last = st.slice(-4);
    const mean = (a: any[], k: string) => a.reduce((x, e) => x + e[k], 0) / a.length;
    console.error(
      `dpo accuracy ${mean(first, "rewards/accuracies")} → ${mean(last, "rewards/accuracies")}, margin ${mean(first, "rewards/margins").toFixed(3)} → ${mean(last, "rewards/margins").toFixed(3)}`,
    );
    expect(mean(last, "rewards/accuracies")).toBeGreaterThan(0.9);
    expect(mean(last, "rewards/margins")).toBeGreaterThan(mean(first, "rewards/margins") + 0.5);
    expect(mean(last, "loss")).toBeLessThan(mean(first, "loss"));
  }, 300_000);

  test("grpo: mean reward rises (reward: share of the response's letters that are the row's letter)", () => {
    const prompts = grammar(16, 4).map((s) => ({ prompt: s.split(" ").slice(0, 2).join(" "), want: "e" }));
    writeFileSync(join(dir, "prompts.jsonl"), prompts.map((r) => JSON.stringify(r)).join("\n") + "\n");
    writeFileSync(
      join(dir, "reward.ts"),
      `export function reward(prompt: string, response: string, row: { want: string }) {
  const letters = [...response].filter((c) => /\\p{L}/u.test(c));
  return letters.length ? letters.filter((c) => c === row.want).length / letters.length : 0;
}
`,
    );
    const data = join(dir, "grpo");
    expect(
      sh(["cmd/pack.ts", "grpo", "--tokenizer", tok, "--seq-len", "8", "--out", data, join(dir, "prompts.jsonl")]).code,
    ).toBe(0);
    const r = sh([
      "cmd/grpo.ts",
      "--data",
      data,
      "--out",
      join(dir, "grpo-run"),
      "--model",
      model,
      "--max-steps",
      "30",
      "--batch-size",
      "2",
      "--group-size",
      "4",
      "--max-new-tokens",
      "6",
      "--max-lr",
      "1e-2",
      "--schedule",
      "constant",
      "--kl-coef",
      "0",
      "--reward",
      join(dir, "reward.ts"),
    ]);
    if (r.code !== 0) throw new Error(r.err);
    const st = events(r.out).filter((e) => e.event === "step");
    for (const k of ["reward", "reward_std", "frac_reward_zero_std", "kl", "clip_ratio", "completions/mean_length"])
      expect(st[0]).toHaveProperty(k);
    const mean = (a: any[]) => a.reduce((x, e) => x + e.reward, 0) / a.length;
    console.error(`grpo reward ${mean(st.slice(0, 6)).toFixed(3)} → ${mean(st.slice(-6)).toFixed(3)}`);
    expect(mean(st.slice(-6))).toBeGreaterThan(mean(st.slice(0, 6)) + 0.15);
  }, 600_000);
});
