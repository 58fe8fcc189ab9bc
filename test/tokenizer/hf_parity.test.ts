// A tokenizer trained here must give, loaded in Hugging Face's `tokenizers` (the Rust library, through
// its Node binding), exactly the ids our encoder gives, and decode(encode(x)) must be x.
import { beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Tokenizer as HfTokenizer } from "tokenizers";
import { Tokenizer } from "../../lib/tokenizer/tokenizer.ts";
import { trainTokenizer } from "../../lib/tokenizer/train.ts";
import { readDocs } from "../../lib/io/readers.ts";

const corpus = join(import.meta.dir, "..", "..", "examples", "data", "bilingual.txt");
let dir: string;
let ours: Tokenizer;
let hf: HfTokenizer;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "bunlm-tok-"));
  await trainTokenizer(readDocs([corpus], { lines: true }), dir, { vocabSize: 700, minFrequency: 1 });
  ours = Tokenizer.fromDir(dir);
  hf = HfTokenizer.fromFile(join(dir, "tokenizer.json"));
});

const invalidUtf8 = new TextDecoder().decode(
  Uint8Array.from([0x61, 0xff, 0xfe, 0x62, 0xc3, 0x28, 0xe4, 0xb8, 0x63, 0xf0, 0x9f, 0x98]),
);

const CASES: [string, string][] = [
  ["english", "The miller's daughter counted 1,024 turns; they'd waited, you're loud, it'll fly."],
  ["chinese", "河水静静地流过老磨坊，磨坊主的女儿看着水推动轮子。天气预报说：早上九点半有雨。"],
  ["mixed", "我们学习machine learning和deep learning，每天practice两个小时。Mixed中文English"],
  ["japanese and korean", "東京で日本語を勉強しています。カタカナとひらがな。한국어 문장입니다."],
  ["emoji", "I ❤️ tokenizers 🤖🦀👨‍👩‍👧‍👦 and flags 🇫🇷🇯🇵 — also ✨sparkles✨"],
  ["whitespace runs", "a  b   c\t\td\n\n\ne \r\n f    \n   \t x\u00a0y\u3000z\u2003w  "],
  ["odd whitespace", "line\u0085next\u2028sep\u2029para\ufeffbom\u200bzw"],
  ["invalid utf-8 (decoded with U+FFFD)", invalidUtf8],
  ["special tokens in text", "<|im_start|>user\nhi<|im_end|>\n<|endoftext|>next<|pad|>"],
  ["numbers and symbols", "3.14159 2026-11-27 $3.50 12% 0x1F +/-= {[()]} a@b.org https://x.y/z?q=1&r=2"],
  ["combining marks (NFC)", "e\u0301 cafe\u0301 A\u030a n\u0303o Ω Å"],
  ["contractions", "DON'T I'M YOU'LL WE'VE THEY'RE she's It'D"],
  [
    "long pieces (merged through the heap)",
    `${" ".repeat(300)}${"ab".repeat(200)} ${"河水".repeat(100)}${"\n".repeat(200)}x`,
  ],
  ["empty", ""],
];

describe("ids identical to Hugging Face tokenizers", () => {
  for (const [name, text] of CASES) {
    test(name, async () => {
      const mine = ours.encode(text);
      const theirs = (await hf.encode(text)).getIds();
      expect(mine).toEqual(theirs);
      // round trip (NFC is the one intended change)
      expect(ours.decode(mine)).toBe(text.normalize("NFC"));
      expect(await hf.decode(theirs, false)).toBe(ours.decode(mine));
    });
  }

  test("the training corpus itself, line by line", async () => {
    const lines = readFileSync(corpus, "utf8").split("\n");
    const theirs = await hf.encodeBatch(lines);
    lines.forEach((l, i) => expect(ours.encode(l)).toEqual(theirs[i]!.getIds()));
  });
});

describe("the trained files", () => {
  test("vocab size, byte tokens and special tokens", () => {
    expect(ours.size).toBe(700);
    expect(hf.getVocabSize(true)).toBe(700);
    for (const s of ["<|endoftext|>", "<|pad|>", "<|im_start|>", "<|im_end|>", "<|reserved_0|>"])
      expect(hf.tokenToId(s)).toBe(ours.specialId(s));
    // every byte has a token: an unseen script still round-trips
    const thai = "ภาษาไทย";
    expect(ours.decode(ours.encode(thai))).toBe(thai);
  });

  test("training is deterministic: same input, same file", async () => {
    const again = mkdtempSync(join(tmpdir(), "bunlm-tok-"));
    await trainTokenizer(readDocs([corpus], { lines: true }), again, { vocabSize: 700, minFrequency: 1 });
    expect(readFileSync(join(again, "tokenizer.json"), "utf8")).toBe(readFileSync(join(dir, "tokenizer.json"), "utf8"));
    expect(readFileSync(join(again, "tokenizer_config.json"), "utf8")).toBe(
      readFileSync(join(dir, "tokenizer_config.json"), "utf8"),
    );
  });
});
