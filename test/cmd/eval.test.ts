// eval end to end against the PyTorch reference (test/eval/eval_ref.py wrote expected.json for the
// committed fixture): perplexity and bits per byte of documents by lm-eval's rolling windows, of a
// packed shard directory, and multiple-choice log-likelihoods, acc and acc_norm; and a bad task row
// failing with one line that names the file and the row.
import { beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const root = join(import.meta.dir, "..", "..");
const fixture = join(root, "test", "eval", "fixtures", "tiny-bytes");
const expected = JSON.parse(readFileSync(join(fixture, "expected.json"), "utf8"));
const inputs = JSON.parse(readFileSync(join(fixture, "eval_inputs.json"), "utf8"));
const tmp = mkdtempSync(join(tmpdir(), "bunlm-eval-"));
const shards = join(tmp, "shards");

function run(cmd: string, args: string[]) {
  const p = Bun.spawnSync([process.execPath, join(root, "cmd", `${cmd}.ts`), ...args], { cwd: tmp });
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
}

const lines = (out: string) =>
  out
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));

/** Relative difference: the reference runs the same f32 model, summing in f64. */
const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

beforeAll(() => {
  const r = run("pack", [
    "seq",
    "--tokenizer",
    fixture,
    "--seq-len",
    String(inputs.shard_seq_len),
    "--doc-mask",
    "--out",
    shards,
    join(fixture, "docs.jsonl"),
  ]);
  if (r.code !== 0) throw new Error(r.err);
});

describe("eval command", () => {
  let out: any[] = [];
  beforeAll(() => {
    const r = run("eval", [
      "--ckpt",
      fixture,
      "--text",
      join(fixture, "docs.jsonl"),
      "--data",
      shards,
      "--tasks",
      join(fixture, "tasks.jsonl"),
      "--seq-len",
      String(inputs.seq_len),
      "--batch-size",
      "3",
      "--per-item",
    ]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    out = lines(r.out);
  });

  test("documents: perplexity is exp(mean loss) of the reference's rolling windows, bits per byte its NLL over ln 2 · bytes", () => {
    const e = out.find((x) => x.event === "eval" && x.text);
    const want = expected.text;
    expect(e.documents).toBe(3);
    expect(e.seq_len).toBe(inputs.seq_len);
    expect(e.tokens).toBe(want.tokens);
    expect(e.bytes).toBe(want.bytes);
    expect(rel(e.loss, want.loss)).toBeLessThan(1e-5);
    expect(rel(e.perplexity, want.perplexity)).toBeLessThan(1e-5);
    expect(rel(e.bits_per_byte, want.bits_per_byte)).toBeLessThan(1e-5);
    const docs = out.filter((x) => x.event === "document");
    expect(docs.map((d) => d.index)).toEqual([1, 2, 3]);
    docs.forEach((d, i) => {
      expect(d.tokens).toBe(want.documents[i].tokens);
      expect(rel(d.loss * d.tokens, want.documents[i].nll)).toBeLessThan(1e-5);
    });
  });

  test("shards: the loss over every target of pack's rows, with their document positions", () => {
    const e = out.find((x) => x.event === "eval" && x.data);
    const want = expected.shards;
    expect(e.split).toBe("train"); // the pack has no val rows
    expect(e.rows).toBe(want.rows);
    expect(e.seq_len).toBe(inputs.shard_seq_len);
    expect(e.tokens).toBe(want.tokens);
    expect(e.bytes).toBe(want.bytes); // the <|endoftext|> targets are scored but hold no text
    expect(rel(e.perplexity, want.perplexity)).toBeLessThan(1e-5);
    expect(rel(e.bits_per_byte, want.bits_per_byte)).toBeLessThan(1e-5);
  });

  test("tasks: each choice's log-likelihood, acc and acc_norm as the reference computes them", () => {
    const e = out.find((x) => x.event === "eval" && x.task);
    const want = expected.tasks;
    // the fixture's answers make the two differ, so a swapped normalization cannot pass
    expect([e.n, e.acc, e.acc_norm]).toEqual([4, 0.75, 0.25]);
    expect([want.n, want.acc, want.acc_norm]).toEqual([4, 0.75, 0.25]);
    // lm-eval's stderr: sample standard deviation over √n; 3 of 4 right: √(0.75·0.25·4/3 / 4)
    expect(e.acc_stderr).toBeCloseTo(0.25, 12);
    const qs = out.filter((x) => x.event === "question");
    expect(qs.map((q) => q.index)).toEqual([1, 2, 3, 4]);
    qs.forEach((q, i) => {
      const w = want.questions[i];
      expect([q.pred, q.pred_norm]).toEqual([w.pred, w.pred_norm]);
      q.loglikelihoods.forEach((ll: number, k: number) => expect(rel(ll, w.loglikelihoods[k])).toBeLessThan(1e-5));
    });
  });
});

describe("eval refuses", () => {
  test("a task row that is not JSON: one line naming the file and the row, before the model loads", () => {
    const f = join(tmp, "bad.jsonl");
    writeFileSync(f, '{"context": "a", "choices": ["b"], "answer": 0}\n{"context": "a", "choices": \n');
    const r = run("eval", ["--ckpt", fixture, "--tasks", f]);
    expect(r.code).toBe(1);
    expect(r.out).toBe("");
    expect(r.err).toMatch(new RegExp(`^bunlm: error: ${f}:2: not valid JSON[^\\n]*\\n$`));
  });

  test("no input, and a window past the model's positions", () => {
    let r = run("eval", ["--ckpt", fixture]);
    expect(r.code).toBe(1);
    expect(r.err).toBe("bunlm: error: give --text FILE, --data DIR or --tasks FILE\n");
    r = run("eval", ["--ckpt", fixture, "--text", join(fixture, "docs.jsonl"), "--seq-len", "65"]);
    expect(r.code).toBe(1);
    expect(r.err).toBe("bunlm: error: --seq-len 65: longer than the model's max_position_embeddings 64\n");
  });
});
