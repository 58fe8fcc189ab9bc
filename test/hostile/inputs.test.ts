// Inputs that used to be accepted and silently ignored, or silently mis-trained: unknown or misspelled
// flags and config keys, keys of another command, flags that contradict each other, model-config keys
// bunlm does not implement, numbers out of range, sizes beyond the adapter, a dataset with nothing to
// train, a setting that was accepted and not applied (sft's label smoothing), a check applied where it
// does not belong (offline GRPO's length), and a machine without a Vulkan driver.
import { beforeAll, describe, expect, test } from "bun:test";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  events,
  expectRefusal,
  expectUnchanged,
  run,
  seqData,
  snapshot,
  tmp,
  caseDir,
  pretrained,
} from "./_helpers.ts";

let base: string, tok: string, seq: string, model: string, ckpt: string;

beforeAll(() => {
  base = tmp("hostile-inputs");
  ({ tok, data: seq, model } = seqData(base));
  ckpt = pretrained(seq, model, join(base, "pt"), 1);
});

const fresh = () => caseDir(base);
const pretrain = (d: string, ...extra: string[]) =>
  run(["cmd/pretrain.ts", "--data", seq, "--out", join(d, "out"), "--batch-size", "2", ...extra]);

/** Refused in one line, with nothing created or changed in the case directory. */
function refused(d: string, r: ReturnType<typeof run>, re: RegExp) {
  expectRefusal(r, re);
  expect(existsSync(join(d, "out"))).toBe(false);
}

describe("flags and config keys", () => {
  test("a misspelled flag is refused with the closest one, before anything runs", () => {
    const d = fresh();
    refused(
      d,
      pretrain(d, "--model", model, "--max-step", "5"),
      /^bunlm: error: unknown flag --max-step \(did you mean --max-steps\?\); `bunlm pretrain --help` lists the flags$/,
    );
    refused(d, pretrain(d, "--model", model, "--max-lrr=1"), /unknown flag --max-lrr \(did you mean --max-lr\?\)/);
    expectRefusal(
      run(["cmd/tokenize.ts", "train", "--vocab-size", "300", "--out", join(d, "out"), "--line", "x.txt"]),
      /unknown flag --line \(did you mean --lines\?\); `bunlm tokenize train --help` lists the flags/,
    );
    expectRefusal(
      run(["cmd/generate.ts", "--ckpt", ckpt, "--prompt-ids", "1", "--temprature", "0"]),
      /unknown flag --temprature \(did you mean --temperature\?\)/,
    );
  });

  test("config-only keys work as flags, with their values (--beta1 0.8, --eps 1e-6)", () => {
    const d = fresh();
    const r = pretrain(
      d,
      "--model",
      model,
      "--max-steps",
      "1",
      "--beta1",
      "0.8",
      "--beta2",
      "0.9",
      "--eps",
      "1e-6",
      "--t-mult",
      "3",
    );
    expect(r.code).toBe(0);
  });

  test("an unknown config key, and a key of another command, are refused naming the file", () => {
    const d = fresh();
    writeFileSync(join(d, "a.json"), JSON.stringify({ max_lrr: 1 }));
    writeFileSync(join(d, "b.json"), JSON.stringify({ group_size: 8 }));
    refused(
      d,
      pretrain(d, "--model", model, "--config", join(d, "a.json")),
      /--config .*a\.json: unknown key "max_lrr" \(did you mean "max_lr"\?\)/,
    );
    refused(
      d,
      run(["cmd/sft.ts", "--data", seq, "--out", join(d, "out"), "--init", ckpt, "--config", join(d, "b.json")]),
      /--config .*b\.json: "group_size" is a setting of `grpo`; `sft` does not use it/,
    );
    refused(
      d,
      run(["cmd/dpo.ts", "--data", seq, "--out", join(d, "out"), "--init", ckpt, "--label-smoothing", "0.1"]),
      /unknown flag --label-smoothing/,
    );
  });

  test("flags that contradict each other are refused", () => {
    const d = fresh();
    refused(d, pretrain(d, "--model", model, "--init", ckpt), /--model and --init exclude each other/);
    refused(d, pretrain(d, "--model", model, "--resume", ckpt), /--model and --resume exclude each other/);
    refused(d, pretrain(d, "--init", ckpt, "--resume", ckpt), /--init and --resume exclude each other/);
  });

  test("numbers out of range name the flag, the rule and the value", () => {
    const d = fresh();
    for (const [flag, value, re] of [
      ["--beta2", "1.5", /--beta2: must be in \[0, 1\) \(got 1\.5\)/],
      ["--beta1", "1", /--beta1: must be in \[0, 1\) \(got 1\)/],
      ["--label-smoothing", "1", /--label-smoothing: must be in \[0, 1\) \(got 1\)/],
      ["--grad-clip", "-1", /--grad-clip: must be at least 0 \(got -1\)/],
      ["--keep", "2.5", /--keep: expected a whole number \(got 2\.5\)/],
      ["--keep", "0x10", /--keep: expected a number \(got "0x10"\)/],
      ["--max-lr", "abc", /--max-lr: expected a number \(got "abc"\)/],
      ["--schedule", "linear", /--schedule: expected cosine, sgdr, wsd or constant \(got "linear"\)/],
    ] as [string, string, RegExp][])
      refused(d, pretrain(d, "--model", model, flag, value), re);
  });
});

describe("model configs", () => {
  test("keys bunlm does not implement are refused, not dropped (a dense model would train instead)", () => {
    const d = fresh();
    const tiny = JSON.parse(require("node:fs").readFileSync(model, "utf8"));
    for (const [extra, re] of [
      [
        { use_qk_norm: true },
        /m\.json: unknown key "use_qk_norm"; bunlm's llama model does not implement it, so it is refused rather than ignored/,
      ],
      [{ ffn_type: "moe", num_experts: 8 }, /m\.json: unknown key "ffn_type"/],
      [{ hiden_size: 64 }, /m\.json: unknown key "hiden_size" \(did you mean "hidden_size"\?\)/],
      [
        { model_type: "gpt2" },
        /m\.json: model_type "gpt2" is not supported \(llama, qwen2, qwen3, mistral, deepseek_v2, qwen2_moe\)/,
      ],
      // a family's key on another family: Qwen2's window settings mean nothing to Mistral
      [{ model_type: "mistral", use_sliding_window: true }, /m\.json: unknown key "use_sliding_window".*mistral model/],
      [{ attention_dropout: 0.1 }, /attention_dropout 0\.1: bunlm trains without dropout/],
    ] as [Record<string, unknown>, RegExp][]) {
      writeFileSync(join(d, "m.json"), JSON.stringify({ ...tiny, ...extra }));
      refused(d, pretrain(d, "--model", join(d, "m.json")), re);
    }
  });

  test("a model too big for the adapter names the weight, its size and the limit", () => {
    const d = fresh();
    writeFileSync(
      join(d, "big.json"),
      // 6.3 GiB for q_proj: over maxBufferSize (4 GiB on lavapipe; a tensor may span several bindings, not buffers)
      JSON.stringify({ hidden_size: 40960, num_hidden_layers: 1, num_attention_heads: 64, intermediate_size: 64 }),
    );
    refused(
      d,
      pretrain(d, "--model", join(d, "big.json")),
      /the weight model\.layers\.0\.self_attn\.q_proj\.weight \[40960,40960\] \(6\.3 GiB\) is over this adapter's [\d.]+ (MiB|GiB) limit for one buffer; make the model smaller/,
    );
  });

  test("a batch larger than the dataset is refused before the run starts", () => {
    const d = fresh();
    refused(
      d,
      run([
        "cmd/pretrain.ts",
        "--data",
        seq,
        "--out",
        join(d, "out"),
        "--model",
        model,
        "--max-steps",
        "1",
        "--batch-size",
        "100000",
      ]),
      /--batch-size 100000: .* has only \d+ training rows; lower --batch-size/,
    );
  });
});

describe("training data", () => {
  test("sft on conversations whose replies were all cut away has no trained tokens and is refused", () => {
    const d = fresh();
    const chat = join(d, "chat.jsonl");
    writeFileSync(
      chat,
      JSON.stringify({
        messages: [
          { role: "user", content: "a long question that fills the whole row and more" },
          { role: "assistant", content: "an answer" },
        ],
      }) + "\n",
    );
    const sft = join(d, "sft");
    const p = run(["cmd/pack.ts", "sft", "--tokenizer", tok, "--seq-len", "8", "--out", sft, chat]);
    expect(p.code).toBe(0);
    const before = snapshot(d);
    expectRefusal(
      run(["cmd/sft.ts", "--data", sft, "--out", join(d, "out"), "--init", ckpt, "--batch-size", "1"]),
      /sft: no trained tokens \(no assistant reply survived packing: none in the data, or all cut off by --seq-len\)/,
    );
    expectUnchanged(before, d);
    expect(existsSync(join(d, "out"))).toBe(false);
  });

  test("sft honours --label-smoothing: the first step's loss changes with it", () => {
    const d = fresh();
    const chat = join(d, "chat.jsonl");
    const rows = require("node:fs")
      .readFileSync(join(import.meta.dir, "..", "..", "examples", "data", "chat.jsonl"), "utf8")
      .split("\n")
      .slice(0, 16)
      .join("\n");
    writeFileSync(chat, rows + "\n");
    expect(run(["cmd/pack.ts", "sft", "--tokenizer", tok, "--seq-len", "32", "--out", join(d, "sft"), chat]).code).toBe(
      0,
    );
    const loss = (smoothing: string, out: string) => {
      const r = run([
        "cmd/sft.ts",
        "--data",
        join(d, "sft"),
        "--out",
        join(d, out),
        "--init",
        ckpt,
        "--max-steps",
        "1",
        "--batch-size",
        "2",
        "--label-smoothing",
        smoothing,
      ]);
      expect(r.code).toBe(0);
      return events(r.out).find((e) => e.event === "step").loss as number;
    };
    const plain = loss("0", "a"),
      smooth = loss("0.3", "b");
    // smoothing moves 30% of the target mass onto the whole vocabulary: on a model this untrained
    // that adds roughly 0.3·(mean -log p) - 0.3·(-log p_target), far from rounding noise
    expect(Math.abs(smooth - plain)).toBeGreaterThan(1e-3);
  });

  test("offline GRPO is not held to the sampling length: prompt + --max-new-tokens may exceed the model", () => {
    const d = fresh();
    const rows = join(d, "offline.jsonl");
    writeFileSync(
      rows,
      [1, 2, 3, 4]
        .map((i) => JSON.stringify({ prompt: `question ${i}`, responses: ["yes", "no"], rewards: [1, 0] }))
        .join("\n") + "\n",
    );
    expect(
      run([
        "cmd/pack.ts",
        "grpo",
        "--tokenizer",
        tok,
        "--seq-len",
        "16",
        "--response-len",
        "8",
        "--out",
        join(d, "grpo"),
        rows,
      ]).code,
    ).toBe(0);
    writeFileSync(
      join(d, "short.json"),
      JSON.stringify({ ...JSON.parse(require("node:fs").readFileSync(model, "utf8")), max_position_embeddings: 32 }),
    );
    expect(
      run([
        "cmd/pretrain.ts",
        "--data",
        seq,
        "--out",
        join(d, "short"),
        "--model",
        join(d, "short.json"),
        "--max-steps",
        "1",
        "--batch-size",
        "2",
      ]).code,
    ).toBe(0);
    // 16 + the default 64 new tokens > 32, but offline GRPO scores 16 + 8 packed tokens
    const r = run([
      "cmd/grpo.ts",
      "--data",
      join(d, "grpo"),
      "--out",
      join(d, "out"),
      "--init",
      join(d, "short", "step_000001"),
      "--max-steps",
      "1",
      "--batch-size",
      "1",
    ]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
  });
});

describe("a vocabulary padded past the tokenizer", () => {
  test("grpo never samples an id the tokenizer lacks (vocab_size rounded up to 64, as many models are)", () => {
    const d = fresh();
    const tokSize = JSON.parse(require("node:fs").readFileSync(join(tok, "tokenizer.json"), "utf8"));
    const size = Object.keys(tokSize.model.vocab).length + tokSize.added_tokens.length;
    const padded = Math.ceil((size + 1) / 64) * 64;
    writeFileSync(
      join(d, "m.json"),
      JSON.stringify({ ...JSON.parse(require("node:fs").readFileSync(model, "utf8")), vocab_size: padded }),
    );
    expect(
      run([
        "cmd/pretrain.ts",
        "--data",
        seq,
        "--out",
        join(d, "pt"),
        "--model",
        join(d, "m.json"),
        "--max-steps",
        "1",
        "--batch-size",
        "2",
      ]).code,
    ).toBe(0);
    writeFileSync(
      join(d, "p.jsonl"),
      [1, 2, 3, 4].map((i) => JSON.stringify({ prompt: `the river ${i}` })).join("\n") + "\n",
    );
    expect(
      run(["cmd/pack.ts", "grpo", "--tokenizer", tok, "--seq-len", "8", "--out", join(d, "grpo"), join(d, "p.jsonl")])
        .code,
    ).toBe(0);
    writeFileSync(join(d, "r.ts"), "export function reward(p: string, r: string) { return r.length % 2; }\n");
    // a high temperature spreads the draws over the whole row, padding included, if it were allowed
    const r = run([
      "cmd/grpo.ts",
      "--data",
      join(d, "grpo"),
      "--out",
      join(d, "out"),
      "--init",
      join(d, "pt", "step_000001"),
      "--max-steps",
      "3",
      "--batch-size",
      "2",
      "--group-size",
      "4",
      "--max-new-tokens",
      "16",
      "--temperature",
      "50",
      "--reward",
      join(d, "r.ts"),
    ]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
  });
});

describe("the machine", () => {
  test("no Vulkan driver: one line that says how to install one", () => {
    const d = fresh();
    const env = { VK_ICD_FILENAMES: "/nonexistent.json", VK_DRIVER_FILES: "/nonexistent.json" };
    const hint =
      /^bunlm: no usable GPU: no WebGPU adapter found; install a Vulkan driver: on Debian 12 run `bash scripts\/install-vulkan\.sh` as root/;
    expectRefusal(run(["cmd/gpu-info.ts"], { env }), hint);
    refused(d, run(["cmd/pretrain.ts", "--data", seq, "--out", join(d, "out"), "--model", model], { env }), hint);
  });
});
