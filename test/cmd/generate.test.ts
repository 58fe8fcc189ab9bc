// generate end to end: a Hugging Face-layout checkpoint with --prompt-ids, a JSONL of prompts, text
// prompts and chat mode with a tokenizer, conversations ({"messages"} rows, --system) rendered as the
// tokenizer's Jinja template renders them, generation_config.json's eos ids, the terminal, and the
// argument errors.
import { beforeAll, describe, expect, test } from "bun:test";
import { Template } from "@huggingface/jinja";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initGpu } from "../../lib/gpu/index.ts";
import { hfConfigJson, parseModelConfig } from "../../lib/model/config.ts";
import { initParams, paramShapes } from "../../lib/model/params.ts";
import { saveModel } from "../../lib/model/checkpoint.ts";
import { trainTokenizer } from "../../lib/tokenizer/train.ts";
import { readDocs } from "../../lib/io/readers.ts";
import { Tokenizer } from "../../lib/tokenizer/tokenizer.ts";
import { TextStream, visible } from "../../lib/tokenizer/text_stream.ts";
import { BYTE_TO_CHAR } from "../../lib/tokenizer/bytes.ts";
import { writeSafetensors, type TensorData } from "../../lib/io/safetensors.ts";
import { readPrompts } from "../../lib/model/prompts.ts";

const root = join(import.meta.dir, "..", "..");
const hf = join(root, "test", "reference", "fixtures", "hf-llama");
const tmp = mkdtempSync(join(tmpdir(), "bunlm-gen-"));
let tokDir = "",
  modelDir = "";

function run(args: string[]) {
  const p = Bun.spawnSync([process.execPath, join(root, "cmd", "generate.ts"), ...args], { cwd: tmp });
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
}

/** The command under a pseudo-terminal (`script`): what a person at a terminal sees. */
function onTerminal(args: string[], pipe = "") {
  const cmd = [process.execPath, join(root, "cmd", "generate.ts"), ...args].join(" ") + pipe;
  const env: Record<string, string | undefined> = { ...process.env, CI: undefined, NO_COLOR: "1" };
  const p = Bun.spawnSync(["script", "-qc", cmd, "/dev/null"], { cwd: tmp, env, stdin: "ignore" });
  return { code: p.exitCode, screen: p.stdout.toString() };
}

const SMALL = {
  vocab_size: 300,
  hidden_size: 32,
  num_hidden_layers: 1,
  num_attention_heads: 2,
  intermediate_size: 64,
  tie_word_embeddings: true,
  max_position_embeddings: 128,
};

beforeAll(async () => {
  await initGpu();
  tokDir = join(tmp, "tok");
  await trainTokenizer(readDocs([join(root, "examples", "data", "bilingual.txt")], { lines: true }), tokDir, {
    vocabSize: 300,
    minFrequency: 1,
  });
  modelDir = join(tmp, "model");
  const c = parseModelConfig(SMALL);
  await saveModel(modelDir, c, initParams(c, 1));
});

describe("generate command", () => {
  test("--prompt-ids, greedy: PyTorch's tokens, with log-probs", () => {
    const want = JSON.parse(readFileSync(join(hf, "expected_greedy.json"), "utf8"));
    const r = run([
      "--ckpt",
      hf,
      "--prompt-ids",
      want.prompt.join(","),
      "--max-new-tokens",
      "12",
      "--temperature",
      "0",
      "--logprobs",
    ]);
    expect(r.code).toBe(0);
    const o = JSON.parse(r.out);
    expect(o.ids).toEqual(want.ids.slice(0, 12));
    expect(o.prompt).toEqual(want.prompt);
    expect(o.finish_reason).toBe("length");
    expect(o.logprobs).toHaveLength(12);
    expect(o.logprobs.every((x: number) => x < 0)).toBe(true);
    expect(o.text).toBeUndefined();
    expect(o.tokens_per_s).toBeGreaterThan(0);
  });

  test("--prompts FILE: one line per prompt, extra fields kept; the same seed gives the same sample", () => {
    const f = join(tmp, "p.jsonl");
    writeFileSync(
      f,
      JSON.stringify({ prompt_ids: [1, 2, 3], id: "a" }) + "\n" + JSON.stringify({ prompt_ids: [4], id: "b" }) + "\n",
    );
    const args = ["--ckpt", hf, "--prompts", f, "--max-new-tokens", "5", "--temperature", "1", "--seed", "11"];
    const r1 = run(args),
      r2 = run(args);
    expect(r1.code).toBe(0);
    const lines = r1.out
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(lines.map((l) => l.id)).toEqual(["a", "b"]);
    const ids = (out: string) =>
      out
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l).ids);
    expect(ids(r2.out)).toEqual(ids(r1.out));
  });

  test("--prompts in batches (--batch-size): each row's ids, text and log-probs are those of one at a time, in input order", () => {
    // rows of different lengths, text and conversations (which stop at <|im_end|>), one repeated
    const f = rows(
      "batched",
      { prompt: "The river", id: 1 },
      { messages: [{ role: "user", content: "hi" }], id: 2 },
      { prompt: "A", id: 3 },
      { prompt_ids: [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21], id: 4 },
      { prompt: "The river", id: 5 },
    );
    const lines = (out: string) =>
      out
        .trim()
        .split("\n")
        .map((l) => {
          const { tokens_per_s, ...rest } = JSON.parse(l);
          expect(tokens_per_s).toBeGreaterThan(0);
          return rest;
        });
    for (const sampling of [
      ["--temperature", "0"],
      ["--temperature", "1", "--seed", "7"],
    ]) {
      const args = ["--ckpt", modelDir, "--tokenizer", tokDir, "--prompts", f, "--max-new-tokens", "9", "--logprobs"];
      const one = run([...args, ...sampling, "--batch-size", "1"]);
      expect(one.code).toBe(0);
      const want = lines(one.out);
      expect(want.map((r) => r.id)).toEqual([1, 2, 3, 4, 5]);
      for (const size of ["2", "8"]) {
        const r = run([...args, ...sampling, "--batch-size", size]);
        expect(r.code).toBe(0);
        expect(lines(r.out)).toEqual(want);
      }
      // the default batches them too
      expect(lines(run([...args, ...sampling]).out)).toEqual(want);
    }
  });

  test("error: a --batch-size that is not a positive whole number", () => {
    for (const [value, why] of [
      ["0", "must be 1 or more"],
      ["2.5", "must be a whole number"],
      ["x", "expected a number"],
    ])
      expect(run(["--ckpt", hf, "--prompt-ids", "1", "--batch-size", value!]).err.trim()).toBe(
        `bunlm: error: option --batch-size: ${why}`,
      );
  });

  test("text prompt and chat mode with a tokenizer", () => {
    const r = run([
      "--ckpt",
      modelDir,
      "--tokenizer",
      tokDir,
      "--prompt",
      "The river",
      "--max-new-tokens",
      "6",
      "--temperature",
      "0",
    ]);
    expect(r.code).toBe(0);
    const o = JSON.parse(r.out);
    expect(o.prompt).toBe("The river");
    expect(typeof o.text).toBe("string");
    const tok = Tokenizer.fromDir(tokDir);
    expect(o.text).toBe(
      tok.decode(
        o.ids.filter((i: number) => !tok.isSpecial(i)),
        true,
      ),
    );
    const c = run([
      "--ckpt",
      modelDir,
      "--tokenizer",
      tokDir,
      "--prompt",
      "hi",
      "--chat",
      "--max-new-tokens",
      "4",
      "--temperature",
      "0",
    ]);
    expect(c.code).toBe(0);
    const chat = JSON.parse(c.out);
    expect(chat.ids.length).toBeLessThanOrEqual(4);
    if (chat.finish_reason === "stop") expect(chat.ids[chat.ids.length - 1]).toBe(tok.specialId("<|im_end|>"));
    else expect(chat.ids).toHaveLength(4);
  });

  const errors: [string, string[], RegExp][] = [
    ["no prompt", ["--ckpt", hf], /give exactly one of --prompt, --prompt-ids, --prompts/],
    ["a text prompt without a tokenizer", ["--ckpt", hf, "--prompt", "hi"], /need a tokenizer/],
    ["a bad temperature", ["--ckpt", hf, "--prompt-ids", "1", "--temperature", "-1"], /temperature: must be >= 0/],
    ["a directory that is not a model", ["--ckpt", tmp, "--prompt-ids", "1"], /config\.json: no config\.json/],
    [
      "an id outside the vocabulary",
      ["--ckpt", hf, "--prompt-ids", "1,500"],
      /token id 500 is outside the model's vocabulary \(97\)/,
    ],
  ];
  for (const [name, args, re] of errors) {
    test(`error: ${name}`, () => {
      const r = run(args);
      expect(r.code).toBe(1);
      expect(r.err.trim().split("\n").pop()).toMatch(re);
    });
  }
});

describe('conversations: {"messages"} rows, --chat and --system', () => {
  const SYSTEM = "Answer in one word.";
  const QUESTION = "What is 7 plus 5?";
  const messages = [
    { role: "system", content: SYSTEM },
    { role: "user", content: QUESTION },
  ];
  const greedy = ["--temperature", "0", "--max-new-tokens", "8", "--logprobs"];

  test("a messages row with --system reads the ids the tokenizer's Jinja template renders, with the generation prompt", async () => {
    const tok = Tokenizer.fromDir(tokDir);
    const template = JSON.parse(readFileSync(join(tokDir, "tokenizer_config.json"), "utf8")).chat_template;
    const text = new Template(template).render({ messages, add_generation_prompt: true });
    expect(text).toBe(
      `<|im_start|>system\n${SYSTEM}<|im_end|>\n<|im_start|>user\n${QUESTION}<|im_end|>\n<|im_start|>assistant\n`,
    );
    const want = tok.encode(text);
    const f = join(tmp, "conversations.jsonl");
    writeFileSync(f, `${JSON.stringify({ id: "q1", messages: [{ role: "user", content: QUESTION }] })}\n`);
    const [p] = await readPrompts({ prompts: f, system: SYSTEM }, tok, 300);
    expect(p!.ids).toEqual(want);
    // the command: the tokens and log-probs of generating from those ids, which only they give
    const a = run(["--ckpt", modelDir, "--tokenizer", tokDir, "--prompts", f, "--system", SYSTEM, ...greedy]);
    const b = run(["--ckpt", modelDir, "--tokenizer", tokDir, "--prompt-ids", want.join(","), ...greedy]);
    const c = run([
      "--ckpt",
      modelDir,
      "--tokenizer",
      tokDir,
      "--prompt",
      QUESTION,
      "--chat",
      "--system",
      SYSTEM,
      ...greedy,
    ]);
    for (const r of [a, b, c]) expect(r.code).toBe(0);
    const [oa, ob, oc] = [a, b, c].map((r) => JSON.parse(r.out));
    expect(oa.ids.length).toBeGreaterThan(0);
    // --prompt-ids is no chat: it does not stop at <|im_end|>, so it may run on past where a chat stops
    expect(ob.ids.slice(0, oa.ids.length)).toEqual(oa.ids);
    expect(ob.logprobs.slice(0, oa.ids.length)).toEqual(oa.logprobs);
    expect(oc.ids).toEqual(oa.ids);
    expect(oc.logprobs).toEqual(oa.logprobs);
    // the row's own fields come back, and the conversation that was rendered (the system turn first)
    expect(oa.id).toBe("q1");
    expect(oa.messages).toEqual(messages);
    expect(oa.prompt).toBeUndefined();
    expect(oc.prompt).toBe(QUESTION);
  });

  const refusals: [string, () => string[], RegExp][] = [
    [
      "--system with --prompt-ids",
      () => ["--ckpt", modelDir, "--tokenizer", tokDir, "--prompt-ids", "1", "--system", "x"],
      /--system applies to conversations, not to --prompt-ids$/,
    ],
    [
      "--system with a plain --prompt",
      () => ["--ckpt", modelDir, "--tokenizer", tokDir, "--prompt", "hi", "--system", "x"],
      /--system applies to conversations: add --chat$/,
    ],
    [
      "--system with a plain prompt row",
      () => ["--ckpt", modelDir, "--tokenizer", tokDir, "--prompts", rows("plain", { prompt: "hi" }), "--system", "x"],
      /plain\.jsonl:1: --system applies to conversations: add --chat, or give \{"messages": \[\.\.\.\]\} rows$/,
    ],
    [
      "--system where the row has a system turn",
      () => [
        "--ckpt",
        modelDir,
        "--tokenizer",
        tokDir,
        "--prompts",
        rows("sys", { messages: [{ role: "user", content: "a" }] }, { messages }),
        "--system",
        "x",
      ],
      /sys\.jsonl:2: the row has a system message of its own; leave --system out or remove it$/,
    ],
    [
      "a role the template does not know",
      () => [
        "--ckpt",
        modelDir,
        "--tokenizer",
        tokDir,
        "--prompts",
        rows("role", { messages: [{ role: "bot", content: "a" }] }),
      ],
      /role\.jsonl:1: messages\[0\]\.role is "bot"; expected one of system, user, assistant, tool$/,
    ],
    [
      "content that is not text",
      () => [
        "--ckpt",
        modelDir,
        "--tokenizer",
        tokDir,
        "--prompts",
        rows("content", { messages: [{ role: "user", content: 5 }] }),
      ],
      /content\.jsonl:1: messages\[0\]\.content is number; expected text$/,
    ],
    [
      "a messages row without a tokenizer",
      () => ["--ckpt", hf, "--prompts", rows("notok", { messages })],
      /notok\.jsonl:1: messages need a tokenizer: give --tokenizer DIR$/,
    ],
  ];
  for (const [name, args, re] of refusals)
    test(`refused: ${name}`, () => {
      const r = run(args());
      expect(r.code).toBe(1);
      expect(r.out).toBe("");
      expect(r.err.trim().split("\n")).toHaveLength(1);
      expect(r.err.trim()).toMatch(re);
    });
});

function rows(name: string, ...objs: unknown[]): string {
  const f = join(tmp, `${name}.jsonl`);
  writeFileSync(f, objs.map((o) => `${JSON.stringify(o)}\n`).join(""));
  return f;
}

describe("generation_config.json", () => {
  // PyTorch's greedy tokens after the fixture's prompt start 94, 86, 77, 63, 24; config.json's eos (2) is not among them
  const want = JSON.parse(readFileSync(join(hf, "expected_greedy.json"), "utf8"));
  const copyHf = (name: string, generationConfig?: unknown) => {
    const dir = join(tmp, name);
    mkdirSync(dir);
    for (const f of ["config.json", "model.safetensors"]) copyFileSync(join(hf, f), join(dir, f));
    if (generationConfig !== undefined)
      writeFileSync(join(dir, "generation_config.json"), JSON.stringify(generationConfig));
    return dir;
  };
  const greedy = (dir: string) =>
    run(["--ckpt", dir, "--prompt-ids", want.prompt.join(","), "--temperature", "0", "--max-new-tokens", "8"]);

  test("a Hugging Face checkpoint's eos ids stop generation, as a list or one id", () => {
    expect(want.ids.slice(0, 5)).toEqual([94, 86, 77, 63, 24]);
    for (const [name, eos] of [
      ["gc-list", [90, 63]],
      ["gc-one", 63],
    ] as const) {
      const r = greedy(copyHf(name, { _from_model_config: false, bos_token_id: 1, eos_token_id: eos }));
      expect(r.code).toBe(0);
      expect(JSON.parse(r.out)).toMatchObject({ ids: [94, 86, 77, 63], finish_reason: "stop" });
    }
    const without = JSON.parse(greedy(copyHf("gc-none")).out);
    expect(without).toMatchObject({ ids: want.ids.slice(0, 8), finish_reason: "length" });
  });

  test("refused: eos ids that are not token ids", () => {
    const r = greedy(copyHf("gc-bad", { eos_token_id: ["x"] }));
    expect(r.code).toBe(1);
    expect(r.err.trim()).toMatch(
      /gc-bad\/generation_config\.json: eos_token_id is \["x"\]; expected a token id or a list of token ids$/,
    );
  });
});

describe("on a terminal", () => {
  let escDir = "";
  const args = () => ["--ckpt", escDir, "--prompt", "hi", "--temperature", "0", "--max-new-tokens", "4"];

  beforeAll(() => {
    // a model that says ESC after anything: layers that add nothing, and an lm_head whose column 0
    // favours the byte token 0x1b (the embedding's channel 0 is 1 for every token)
    const tok = Tokenizer.fromDir(tokDir);
    const esc = tok.tokenToId(BYTE_TO_CHAR[0x1b]!)!;
    const c = parseModelConfig({ ...SMALL, tie_word_embeddings: false });
    escDir = join(tmp, "esc");
    mkdirSync(escDir);
    const tensors: Record<string, TensorData> = {};
    for (const [name, shape] of paramShapes(c)) {
      const w = new Float32Array(shape.reduce((a, b) => a * b, 1));
      if (name.endsWith("layernorm.weight") || name === "model.norm.weight") w.fill(1);
      else if (name === "model.embed_tokens.weight") for (let j = 0; j < shape[0]!; j++) w[j * shape[1]!] = 1;
      else if (name === "lm_head.weight") w[esc * shape[1]!] = 1;
      tensors[name] = { dtype: "F32", shape, data: w };
    }
    writeSafetensors(join(escDir, "model.safetensors"), tensors, { format: "pt" });
    writeFileSync(join(escDir, "config.json"), JSON.stringify(hfConfigJson(c)));
    for (const f of ["tokenizer.json", "tokenizer_config.json"]) copyFileSync(join(tokDir, f), join(escDir, f));
  });

  test("the text is shown once, streamed with control characters escaped; the JSON line after it leaves it out", () => {
    const piped = JSON.parse(run(args()).out);
    expect(piped.text).toBe("\x1b\x1b\x1b\x1b");
    const t = onTerminal(args());
    expect(t.code).toBe(0);
    expect(t.screen).not.toContain("\x1b");
    const lines = t.screen.split("\r\n").filter(Boolean);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toBe("\\x1b\\x1b\\x1b\\x1b");
    const { text, tokens_per_s, ...rest } = piped;
    const { tokens_per_s: _, ...shown } = JSON.parse(lines[1]!);
    expect(shown).toEqual(rest);
  });

  test("stdout into a pipe: the JSON keeps the text, and the stream goes to the terminal's stderr", () => {
    const t = onTerminal(args(), " | cat");
    expect(t.code).toBe(0);
    const lines = t.screen.split("\r\n").filter(Boolean);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toBe("\\x1b\\x1b\\x1b\\x1b");
    expect(JSON.parse(lines[1]!).text).toBe("\x1b\x1b\x1b\x1b");
  });

  test("--prompts in a batch: each row's text is shown once, before its JSON line, which leaves it out", () => {
    const f = rows("esc-batch", { prompt: "hi", id: "a" }, { prompt: "The river", id: "b" });
    const t = onTerminal(["--ckpt", escDir, "--prompts", f, "--temperature", "0", "--max-new-tokens", "3"]);
    expect(t.code).toBe(0);
    expect(t.screen).not.toContain("\x1b");
    const lines = t.screen.split("\r\n").filter(Boolean);
    expect(lines).toHaveLength(4);
    expect([lines[0], lines[2]]).toEqual(["\\x1b\\x1b\\x1b", "\\x1b\\x1b\\x1b"]);
    const [a, b] = [lines[1]!, lines[3]!].map((l) => JSON.parse(l));
    expect([a.id, b.id]).toEqual(["a", "b"]);
    expect(a.text).toBeUndefined();
    expect(b.ids).toHaveLength(3);
  });

  test("a character split across tokens is shown once its last byte arrives, never as U+FFFD first", () => {
    const tok = Tokenizer.fromDir(tokDir);
    const stream = new TextStream(tok);
    const bytes = [...new TextEncoder().encode("€")].map((b) => tok.tokenToId(BYTE_TO_CHAR[b]!)!);
    expect(bytes.map((id) => stream.push(id))).toEqual(["", "", "€"]);
    expect(stream.push(bytes[0]!)).toBe("");
    // the end of the stream cuts it off: now it is U+FFFD, as decoding all the ids gives
    expect(stream.end()).toBe("\uFFFD");
  });

  test("visible: C0 controls but newline and tab, DEL and C1 controls escaped; other text unchanged", () => {
    expect(visible("a\x1b[2Jb\r\n\tc\x00\x7f\x85é€😀")).toBe("a\\x1b[2Jb\\x0d\n\tc\\x00\\x7f\\x85é€😀");
  });
});
