// The training loop through its command line: exact resume, accumulation, signals, NaN, mismatches,
// user callbacks, checkpoint retention.
import { beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { initGpu } from "../../lib/gpu/index.ts";
import { loadModel } from "../../lib/model/checkpoint.ts";
import { namedParams, disposeParams } from "../../lib/model/params.ts";
import { bun, events, root, seqData, sh, tmp, TINY_MODEL } from "./helpers.ts";

const dir = tmp("train");
let d: ReturnType<typeof seqData>;

beforeAll(async () => {
  await initGpu();
  d = seqData(dir);
});

const steps = (out: string) => events(out).filter((e) => e.event === "step");

describe("pretrain", () => {
  test("a 20-step run equals the same run resumed from its step-10 checkpoint, bit for bit", () => {
    const a = sh([
      "cmd/pretrain.ts",
      "--data",
      d.data,
      "--out",
      join(dir, "a"),
      "--model",
      d.model,
      "--max-steps",
      "20",
      "--batch-size",
      "4",
      "--max-lr",
      "3e-3",
      "--warmup-steps",
      "3",
      "--ckpt-interval",
      "10",
      "--seed",
      "5",
    ]);
    expect(a.code).toBe(0);
    const b = sh(["cmd/pretrain.ts", "--resume", join(dir, "a", "step_000010"), "--out", join(dir, "b")]);
    expect(b.code).toBe(0);
    const la = steps(a.out),
      lb = steps(b.out);
    expect(la.map((e) => e.step)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(lb.map((e) => e.step)).toEqual(Array.from({ length: 10 }, (_, i) => i + 11));
    for (const e of lb) {
      const twin = la.find((x) => x.step === e.step)!;
      expect(e.loss).toBe(twin.loss);
      expect(e.grad_norm).toBe(twin.grad_norm);
      expect(e.learning_rate).toBe(twin.learning_rate);
    }
    const fa = readFileSync(join(dir, "a", "step_000020", "model.safetensors"));
    const fb = readFileSync(join(dir, "b", "step_000020", "model.safetensors"));
    expect(fa.equals(fb)).toBe(true);
    // every step line has the promised fields; metrics.jsonl has the same lines
    for (const k of ["step", "epoch", "loss", "learning_rate", "grad_norm", "tokens", "tokens_per_s"])
      expect(la[0]).toHaveProperty(k);
    const file = readFileSync(join(dir, "a", "metrics.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(file.filter((e) => e.event === "step").map((e) => e.loss)).toEqual(la.map((e) => e.loss));
    // the checkpoint is a model directory plus training state
    for (const f of ["config.json", "model.safetensors", "optimizer.safetensors", "meta.json", "tokenizer.json"])
      expect(existsSync(join(dir, "a", "step_000020", f))).toBe(true);
    const meta = JSON.parse(readFileSync(join(dir, "a", "step_000020", "meta.json"), "utf8"));
    expect(meta).toMatchObject({
      step: 20,
      consumed_samples: 80,
      strategy: "seq",
      config: { max_lr: 3e-3, batch_size: 4 },
    });
  });

  test("accumulating 4 micro-batches of 2 equals one batch of 8", async () => {
    const common = [
      "cmd/pretrain.ts",
      "--data",
      d.data,
      "--model",
      d.model,
      "--max-steps",
      "1",
      "--max-lr",
      "1e-2",
      "--schedule",
      "constant",
      "--seed",
      "3",
    ];
    const one = sh([...common, "--out", join(dir, "acc1"), "--batch-size", "8"]);
    const four = sh([...common, "--out", join(dir, "acc4"), "--batch-size", "2", "--accumulation-steps", "4"]);
    expect(one.code).toBe(0);
    expect(four.code).toBe(0);
    const [s1] = steps(one.out),
      [s4] = steps(four.out);
    // same rows, same normalizer; only the order of the sums differs (f32 rounding)
    expect(Math.abs(s1.loss - s4.loss)).toBeLessThan(1e-5 * s1.loss);
    expect(Math.abs(s1.grad_norm - s4.grad_norm)).toBeLessThan(1e-4 * s1.grad_norm);
    const a = loadModel(join(dir, "acc1", "step_000001")),
      b = loadModel(join(dir, "acc4", "step_000001"));
    const pb = namedParams(b.params);
    for (const [name, t] of namedParams(a.params)) {
      const x = await t.toArray(),
        y = await pb.get(name)!.toArray();
      let worst = 0;
      for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i]! - y[i]!));
      if (!(worst < 1e-5)) throw new Error(`${name}: differs by ${worst}`);
    }
    disposeParams(a.params);
    disposeParams(b.params);
  });

  test("kill -INT during training leaves a loadable checkpoint and exits 130", async () => {
    const out = join(dir, "sig");
    const p = Bun.spawn(
      [
        bun,
        "cmd/pretrain.ts",
        "--data",
        d.data,
        "--out",
        out,
        "--model",
        d.model,
        "--max-steps",
        "100000",
        "--batch-size",
        "2",
      ],
      { cwd: root, stdout: "pipe", stderr: "pipe" },
    );
    const reader = p.stdout.getReader();
    let text = "";
    while (!text.includes('"event":"step"')) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    p.kill("SIGINT");
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    expect(await p.exited).toBe(130);
    const ck = events(text).find((e) => e.event === "checkpoint");
    expect(ck).toMatchObject({ reason: "SIGINT" });
    const m = loadModel(ck.path);
    expect(m.config.hidden_size).toBe(32);
    disposeParams(m.params);
    expect(JSON.parse(readFileSync(join(ck.path, "meta.json"), "utf8")).reason).toBe("SIGINT");
  });

  test("a loss that goes non-finite saves the last good state and stops with a message", () => {
    const r = sh([
      "cmd/pretrain.ts",
      "--data",
      d.data,
      "--out",
      join(dir, "nan"),
      "--model",
      d.model,
      "--max-steps",
      "50",
      "--batch-size",
      "4",
      "--max-lr",
      "1e30",
      "--schedule",
      "constant",
      "--grad-clip",
      "0",
    ]);
    expect(r.code).toBe(1);
    const line = r.err.trim().split("\n").pop()!;
    expect(line).toMatch(
      /^bunlm: error: loss is \S+, gradient norm \S+ at step \d+; saved the last good state \(step \d+\) in .*step_\d+/,
    );
    expect(line).toMatch(/(NaN|Infinity)/);
    const ck = events(r.out).find((e) => e.event === "checkpoint");
    expect(ck.reason).toBe("nan");
    expect(existsSync(join(ck.path, "model.safetensors"))).toBe(true);
  });

  test("--keep 2 keeps the two newest checkpoints", () => {
    const r = sh([
      "cmd/pretrain.ts",
      "--data",
      d.data,
      "--out",
      join(dir, "keep"),
      "--model",
      d.model,
      "--max-steps",
      "8",
      "--batch-size",
      "2",
      "--ckpt-interval",
      "2",
      "--keep",
      "2",
    ]);
    expect(r.code).toBe(0);
    expect(
      readdirSync(join(dir, "keep"))
        .filter((f) => f.startsWith("step_"))
        .sort(),
    ).toEqual(["step_000006", "step_000008"]);
  });

  test("a user callback sees every hook, in order", () => {
    const cb = join(dir, "cb.ts");
    const log = join(dir, "cb.log");
    writeFileSync(
      cb,
      `import { appendFileSync } from "node:fs";
const w = (s: string) => appendFileSync(${JSON.stringify(log)}, s + "\\n");
export default class {
  on_train_begin() { w("train_begin"); }
  on_epoch_begin(t: any) { w("epoch_begin " + t.epoch); }
  on_step_begin(t: any) { w("step_begin " + (t.step + 1)); }
  on_batch_begin(_t: any, b: number) { w("batch_begin " + b); }
  on_batch_end(_t: any, b: number) { w("batch_end " + b); }
  on_step_end(_t: any, m: any) { w("step_end " + m.step); }
  on_epoch_end(t: any) { w("epoch_end " + t.epoch); }
  on_train_end() { w("train_end"); }
}
`,
    );
    const r = sh([
      "cmd/pretrain.ts",
      "--data",
      d.data,
      "--out",
      join(dir, "cb"),
      "--model",
      d.model,
      "--max-steps",
      "2",
      "--batch-size",
      "2",
      "--accumulation-steps",
      "2",
      "--callback",
      cb,
    ]);
    expect(r.code).toBe(0);
    expect(readFileSync(log, "utf8").trim().split("\n")).toEqual([
      "train_begin",
      "epoch_begin 0",
      "step_begin 1",
      "batch_begin 0",
      "batch_end 0",
      "batch_begin 1",
      "batch_end 1",
      "step_end 1",
      "step_begin 2",
      "batch_begin 0",
      "batch_end 0",
      "batch_begin 1",
      "batch_end 1",
      "step_end 2",
      "epoch_end 0",
      "train_end",
    ]);
  });
});

describe("refusals before training starts", () => {
  test("--init from a run with another tokenizer", () => {
    const other = tmp("train-other");
    const d2 = seqData(other, []);
    // a different tokenizer: retrain with another vocabulary size and pack again
    const tok2 = join(other, "tok2"),
      data2 = join(other, "seq2");
    expect(
      sh([
        "cmd/tokenize.ts",
        "train",
        "--vocab-size",
        "300",
        "--min-frequency",
        "1",
        "--out",
        tok2,
        "--lines",
        join(root, "examples", "data", "bilingual.txt"),
      ]).code,
    ).toBe(0);
    expect(
      sh([
        "cmd/pack.ts",
        "seq",
        "--tokenizer",
        tok2,
        "--seq-len",
        "16",
        "--out",
        data2,
        "--lines",
        join(root, "examples", "data", "bilingual.txt"),
      ]).code,
    ).toBe(0);
    expect(
      sh([
        "cmd/pretrain.ts",
        "--data",
        d2.data,
        "--out",
        join(other, "run"),
        "--model",
        d2.model,
        "--max-steps",
        "1",
        "--batch-size",
        "2",
      ]).code,
    ).toBe(0);
    const r = sh([
      "cmd/sft.ts",
      "--data",
      data2,
      "--out",
      join(other, "x"),
      "--init",
      join(other, "run", "step_000001"),
    ]);
    expect(r.code).toBe(1);
    expect(r.err.trim()).toMatch(/holds seq shards; this command trains on `pack sft` shards|another tokenizer/);
    const r2 = sh([
      "cmd/pretrain.ts",
      "--data",
      data2,
      "--out",
      join(other, "y"),
      "--init",
      join(other, "run", "step_000001"),
    ]);
    expect(r2.code).toBe(1);
    expect(r2.err.trim()).toMatch(/--init .* was trained with another tokenizer/);
  });

  const bad: [string, string[], RegExp][] = [
    ["no model source", [], /give --model MODEL_CONFIG\.json .*, --init CKPT_DIR or --resume CKPT_DIR/],
    [
      "an unknown schedule",
      ["--model", "M", "--schedule", "linear"],
      /--schedule: expected cosine, sgdr, wsd or constant/,
    ],
    ["a zero batch size", ["--model", "M", "--batch-size", "0"], /--batch-size: must be at least 1/],
    ["--init and --resume together", ["--init", "a", "--resume", "b"], /--init and --resume exclude each other/],
  ];
  for (const [name, extra, re] of bad)
    test(name, () => {
      const args = extra.map((x) => (x === "M" ? d.model : x));
      const r = sh(["cmd/pretrain.ts", "--data", d.data, "--out", join(dir, "bad"), ...args]);
      expect(r.code).toBe(1);
      expect(r.err.trim().split("\n").pop()).toMatch(re);
    });

  test("a model whose vocabulary is smaller than the tokenizer's", () => {
    const m = join(dir, "small.json");
    writeFileSync(m, JSON.stringify({ ...TINY_MODEL, vocab_size: 100 }));
    const r = sh(["cmd/pretrain.ts", "--data", d.data, "--out", join(dir, "v"), "--model", m]);
    expect(r.code).toBe(1);
    expect(r.err.trim()).toMatch(/vocab_size 100 is smaller than the tokenizer's 400/);
  });
});

describe("multi-head latent attention end to end", () => {
  test("an MLA model pre-trains, resumes exactly, generates with its latent cache, and inspects", () => {
    const m = join(dir, "mla.json");
    writeFileSync(
      m,
      JSON.stringify({
        hidden_size: 32,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        intermediate_size: 64,
        attn_type: "mla",
        kv_lora_rank: 8,
        qk_nope_head_dim: 6,
        qk_rope_head_dim: 4,
        v_head_dim: 6,
        tie_word_embeddings: true,
      }),
    );
    const a = sh([
      "cmd/pretrain.ts",
      "--data",
      d.data,
      "--out",
      join(dir, "mla-a"),
      "--model",
      m,
      "--max-steps",
      "6",
      "--batch-size",
      "2",
      "--ckpt-interval",
      "3",
      "--max-lr",
      "3e-3",
    ]);
    expect(a.code).toBe(0);
    const b = sh(["cmd/pretrain.ts", "--resume", join(dir, "mla-a", "step_000003"), "--out", join(dir, "mla-b")]);
    expect(b.code).toBe(0);
    expect(steps(b.out).map((e) => e.loss)).toEqual(
      steps(a.out)
        .slice(3)
        .map((e) => e.loss),
    );
    const g = sh([
      "cmd/generate.ts",
      "--ckpt",
      join(dir, "mla-a", "latest"),
      "--prompt",
      "The river",
      "--max-new-tokens",
      "5",
      "--temperature",
      "0",
    ]);
    expect(g.code).toBe(0);
    const o = JSON.parse(g.out);
    expect(o.ids).toHaveLength(5);
    expect(o.kv_cache_bytes_per_token).toBe(2 * (8 + 4) * 4);
    expect(o.kv_cache_bytes_per_token_expanded).toBe(2 * 4 * (6 + 4 + 6) * 4);
    const s = events(sh(["cmd/ckpt-inspect.ts", join(dir, "mla-a", "latest")]).out).pop();
    expect(s.config).toMatchObject({ attn_type: "mla", kv_lora_rank: 8 });
    expect(s.params_by_module.attention).toBeGreaterThan(0);
  });
});
