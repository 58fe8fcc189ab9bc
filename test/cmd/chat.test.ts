// chat end to end, as a user runs it: turns piped on stdin, one JSON line per turn; the KV cache kept
// across turns (each turn reads only its own tokens, and answers what generating from scratch on the
// whole conversation answers); the end-of-turn token in the cache; a context that fills; a terminal.
import { beforeAll, describe, expect, test } from "bun:test";
import { Template } from "@huggingface/jinja";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initGpu } from "../../lib/gpu/index.ts";
import { writeSafetensors, type TensorData } from "../../lib/io/safetensors.ts";
import { hfConfigJson, parseModelConfig } from "../../lib/model/config.ts";
import { initParams, paramShapes } from "../../lib/model/params.ts";
import { saveModel } from "../../lib/model/checkpoint.ts";
import { readDocs } from "../../lib/io/readers.ts";
import { trainTokenizer } from "../../lib/tokenizer/train.ts";
import { Tokenizer } from "../../lib/tokenizer/tokenizer.ts";
import { visible } from "../../lib/tokenizer/text_stream.ts";

const root = join(import.meta.dir, "..", "..");
const tmp = mkdtempSync(join(tmpdir(), "bunlm-chat-"));
let tok: Tokenizer;
let template = "";
const dirs: Record<string, string> = {};

const SMALL = {
  vocab_size: 300,
  hidden_size: 32,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  intermediate_size: 64,
  tie_word_embeddings: true,
  max_position_embeddings: 128,
};
const LATENT = {
  attn_type: "mla",
  kv_lora_rank: 12,
  q_lora_rank: 0,
  qk_nope_head_dim: 8,
  qk_rope_head_dim: 4,
  v_head_dim: 6,
};

function withTokenizer(dir: string): string {
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) copyFileSync(join(tmp, "tok", f), join(dir, f));
  return dir;
}

/** Layers that add nothing and an lm_head whose column 0 favours one token: every answer is that token. */
function alwaysSays(dir: string, id: number): string {
  const c = parseModelConfig({ ...SMALL, tie_word_embeddings: false });
  mkdirSync(dir, { recursive: true });
  const tensors: Record<string, TensorData> = {};
  for (const [name, shape] of paramShapes(c)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const w = new Float32Array(n);
    if (name.endsWith("layernorm.weight") || name === "model.norm.weight") w.fill(1);
    // the embedding's channel 0 is 1 for every token; after the final norm it is √C, times column 0
    else if (name === "model.embed_tokens.weight") for (let j = 0; j < shape[0]!; j++) w[j * shape[1]!] = 1;
    else if (name === "lm_head.weight") w[id * shape[1]!] = 1;
    tensors[name] = { dtype: "F32", shape, data: w };
  }
  writeSafetensors(join(dir, "model.safetensors"), tensors, { format: "pt" });
  writeFileSync(join(dir, "config.json"), JSON.stringify(hfConfigJson(c)));
  return withTokenizer(dir);
}

function chat(dir: string, stdin: string, extra: string[] = []) {
  const p = Bun.spawnSync(
    [process.execPath, join(root, "cmd", "chat.ts"), "--ckpt", dir, "--temperature", "0", ...extra],
    { cwd: tmp, stdin: new TextEncoder().encode(stdin) },
  );
  const out = p.stdout.toString();
  return {
    code: p.exitCode,
    err: p.stderr.toString(),
    out,
    turns: out.trim()
      ? out
          .trim()
          .split("\n")
          .map((l) => JSON.parse(l))
      : [],
  };
}

function generateIds(dir: string, ids: number[], maxNew: number): number[] {
  const p = Bun.spawnSync([
    process.execPath,
    join(root, "cmd", "generate.ts"),
    ...["--ckpt", dir, "--prompt-ids", ids.join(","), "--temperature", "0", "--max-new-tokens", String(maxNew)],
  ]);
  if (p.exitCode !== 0) throw new Error(p.stderr.toString());
  return JSON.parse(p.stdout.toString()).ids;
}

/** The template rendered directly with @huggingface/jinja, not through bunlm's code. */
const render = (messages: { role: string; content: string }[], gen: boolean) =>
  new Template(template).render({ messages, add_generation_prompt: gen });

beforeAll(async () => {
  await initGpu();
  await trainTokenizer(readDocs([join(root, "examples", "data", "bilingual.txt")], { lines: true }), join(tmp, "tok"), {
    vocabSize: 300,
    minFrequency: 1,
  });
  tok = Tokenizer.fromDir(join(tmp, "tok"));
  template = JSON.parse(readFileSync(join(tmp, "tok", "tokenizer_config.json"), "utf8")).chat_template;
  for (const [name, raw] of [
    ["gqa", SMALL],
    ["latent", { ...SMALL, ...LATENT }],
  ] as const) {
    const c = parseModelConfig(raw);
    dirs[name] = join(tmp, name);
    await saveModel(dirs[name], c, initParams({ ...c, initializer_range: 0.3 }, 1));
    withTokenizer(dirs[name]);
  }
  dirs.eot = alwaysSays(join(tmp, "eot"), tok.specialId("<|im_end|>"));
});

describe("chat: turns from stdin", () => {
  for (const kind of ["gqa", "latent"])
    test(`two turns; the second reads only its own tokens and answers as generating from scratch does (${kind} cache)`, () => {
      const r = chat(dirs[kind]!, "hi\nmore\n", ["--max-new-tokens", "6"]);
      expect(r.err).toBe("");
      expect(r.code).toBe(0);
      expect(r.turns.map((t) => [t.turn, t.user])).toEqual([
        [1, "hi"],
        [2, "more"],
      ]);
      const [t1, t2] = r.turns;
      const first = render([{ role: "user", content: "hi" }], true);
      const p1 = tok.encode(first);
      expect(t1).toMatchObject({ prompt_tokens: p1.length, cached_tokens: 0 });
      expect(t1.context_tokens).toBe(p1.length + t1.ids.length);
      expect(t1.text).toBe(
        tok.decode(
          t1.ids.filter((id: number) => !tok.isSpecial(id)),
          true,
        ),
      );
      // the cache holds turn 1 as the model read it: its prompt and its own answer ids, the last included
      const read = first + tok.decode(t1.ids);
      const second = render(
        [
          { role: "user", content: "hi" },
          { role: "assistant", content: t1.text },
          { role: "user", content: "more" },
        ],
        true,
      );
      expect(second.startsWith(read)).toBe(true);
      const p2 = tok.encode(second.slice(read.length));
      expect(t2).toMatchObject({ prompt_tokens: p2.length, cached_tokens: p1.length + t1.ids.length });
      expect(t2.context_tokens).toBe(t2.cached_tokens + p2.length + t2.ids.length);
      const scratch = generateIds(dirs[kind]!, [...p1, ...t1.ids, ...p2], 6);
      expect(t2.ids.length).toBeGreaterThan(0);
      expect(t2.ids).toEqual(scratch.slice(0, t2.ids.length));
      if (t2.finish_reason === "length") expect(t2.ids).toEqual(scratch);
    });

  test("an answer that ends at <|im_end|>: the token is in the cache, the next turn reads the template's glue after it", () => {
    const imEnd = tok.specialId("<|im_end|>");
    const system = "Be brief.";
    const r = chat(dirs.eot!, "hi\nmore\n", ["--system", system, "--max-new-tokens", "5"]);
    expect(r.code).toBe(0);
    const [t1, t2] = r.turns;
    const first = render(
      [
        { role: "system", content: system },
        { role: "user", content: "hi" },
      ],
      true,
    );
    expect(t1).toMatchObject({
      text: "",
      ids: [imEnd],
      finish_reason: "stop",
      prompt_tokens: tok.encode(first).length,
    });
    expect(t2).toMatchObject({
      ids: [imEnd],
      finish_reason: "stop",
      cached_tokens: tok.encode(first).length + 1,
      prompt_tokens: tok.encode("\n<|im_start|>user\nmore<|im_end|>\n<|im_start|>assistant\n").length,
    });
  });

  test("an answer the template renders otherwise (it ended at <|endoftext|>, not <|im_end|>): the turn starts over, correctly", () => {
    const eos = tok.specialId("<|endoftext|>");
    const r = chat(alwaysSays(join(tmp, "eos"), eos), "hi\nmore\n", ["--max-new-tokens", "5"]);
    expect(r.code).toBe(0);
    const [t1, t2] = r.turns;
    expect(t1).toMatchObject({ ids: [eos], finish_reason: "stop", text: "" });
    const whole = render(
      [
        { role: "user", content: "hi" },
        { role: "assistant", content: "" },
        { role: "user", content: "more" },
      ],
      true,
    );
    expect(t2).toMatchObject({ cached_tokens: 0, prompt_tokens: tok.encode(whole).length, ids: [eos] });
  });

  test("/exit ends the chat; blank lines are no turns", () => {
    const r = chat(dirs.gqa!, "\nhi\n  \n/exit\nmore\n", ["--max-new-tokens", "2"]);
    expect(r.code).toBe(0);
    expect(r.turns.map((t) => t.user)).toEqual(["hi"]);
  });

  test("a context that fills: the last answer is cut to what fits, then one line says so and the chat ends", () => {
    const small = join(tmp, "short");
    mkdirSync(small);
    copyFileSync(join(dirs.gqa!, "model.safetensors"), join(small, "model.safetensors"));
    const c = JSON.parse(readFileSync(join(dirs.gqa!, "config.json"), "utf8"));
    const p1 = tok.encode(render([{ role: "user", content: "hi" }], true)).length;
    writeFileSync(join(small, "config.json"), JSON.stringify({ ...c, max_position_embeddings: p1 + 3 }));
    withTokenizer(small);
    const r = chat(small, "hi\nmore\nagain\n", ["--max-new-tokens", "6"]);
    expect(r.code).toBe(0);
    expect(r.turns).toHaveLength(1);
    expect(r.turns[0]).toMatchObject({ finish_reason: "length", context_tokens: p1 + 3 });
    expect(r.turns[0].ids).toHaveLength(3);
    expect(r.err.trim().split("\n")).toHaveLength(1);
    expect(r.err).toMatch(
      new RegExp(
        `^bunlm: warning: the conversation \\(${p1 + 3} tokens\\) and the next turn \\(\\d+\\) leave no room in the model's context of ${p1 + 3} tokens \\(max_position_embeddings\\); the chat ends here\\n$`,
      ),
    );
  });

  const refusals: [string, () => string[], RegExp][] = [
    [
      "a checkpoint without a tokenizer",
      () => ["--ckpt", join(root, "test", "reference", "fixtures", "hf-llama")],
      /no tokenizer\.json; give the model's tokenizer with --tokenizer DIR$/,
    ],
    ["a bad --top-p", () => ["--ckpt", dirs.gqa!, "--top-p", "0"], /top-p: must be in \(0, 1\]$/],
  ];
  for (const [name, args, re] of refusals)
    test(`refused: ${name}`, () => {
      const p = Bun.spawnSync([process.execPath, join(root, "cmd", "chat.ts"), ...args()], {
        stdin: new TextEncoder().encode("hi\n"),
      });
      expect(p.exitCode).toBe(1);
      expect(p.stdout.toString()).toBe("");
      const err = p.stderr.toString().trim().split("\n");
      expect(err).toHaveLength(1);
      expect(err[0]).toMatch(/^bunlm: error: /);
      expect(err[0]).toMatch(re);
    });
});

describe("chat on a terminal", () => {
  test("prompts, shows each answer once with control characters escaped, prints no JSON", () => {
    const piped = chat(dirs.gqa!, "hi\n", ["--max-new-tokens", "8"]).turns[0];
    // the untrained model's answer holds control characters, or escaping would go untested
    // biome-ignore lint/suspicious/noControlCharactersInRegex: what the test looks for
    expect(piped.text).toMatch(/[\x00-\x08\x0b-\x1f]/);
    const cmd = `${process.execPath} ${join(root, "cmd", "chat.ts")} --ckpt ${dirs.gqa} --temperature 0 --max-new-tokens 8`;
    const p = Bun.spawnSync(["script", "-qc", cmd, "/dev/null"], { stdin: new TextEncoder().encode("hi\n/exit\n") });
    const screen = p.stdout.toString();
    expect(p.exitCode).toBe(0);
    expect(screen).toContain(`> ${visible(piped.text)}\r\n> `);
    expect(screen.split(visible(piped.text))).toHaveLength(2);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: no control character but the line ends
    expect(screen).not.toMatch(/[\x00-\x08\x0b\x0c\x0e-\x1f]/);
    expect(screen).not.toContain("{");
  });
});
