// Loading tokenizer.json runs the file's rules or refuses it: each variant we accept gives the ids
// Hugging Face's `tokenizers` gives for the same file, and each setting we refuse is one that really
// changes Hugging Face's ids (so accepting it silently would train on other ids than HF serves).
import { beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Tokenizer as HfTokenizer } from "tokenizers";
import { Tokenizer } from "../../lib/tokenizer/tokenizer.ts";
import { trainTokenizer } from "../../lib/tokenizer/train.ts";
import { readDocs } from "../../lib/io/readers.ts";

const corpus = join(import.meta.dir, "..", "..", "examples", "data", "bilingual.txt");
let base: any;

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), "bunlm-tokload-"));
  await trainTokenizer(readDocs([corpus], { lines: true }), dir, { vocabSize: 700, minFrequency: 1 });
  base = JSON.parse(readFileSync(join(dir, "tokenizer.json"), "utf8"));
});

const TEXT = "\"Don't!\" The river's (mill) turns, cafe\u0301 ﬁne ① Ｈｅｌｌｏ 河水 <|im_start|>  x <|endoftext|>y";

function variant(change: (j: any) => void): any {
  const j = structuredClone(base);
  change(j);
  return j;
}

const hfIds = async (j: any) => (await HfTokenizer.fromString(JSON.stringify(j)).encode(TEXT)).getIds();

describe("accepted variants give Hugging Face's ids", () => {
  const cases: [string, (j: any) => void][] = [
    ["normalizer null (no normalization)", (j) => (j.normalizer = null)],
    ["normalizer NFKC", (j) => (j.normalizer = { type: "NFKC" })],
    ["normalizer NFD", (j) => (j.normalizer = { type: "NFD" })],
    ["ByteLevel trim_offsets false (offsets only)", (j) => (j.pre_tokenizer.pretokenizers[1].trim_offsets = false)],
    [
      "post_processor ByteLevel (offsets only)",
      (j) => (j.post_processor = { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true }),
    ],
    [
      "decoder ByteLevel with other flags (ignored by HF's decoder)",
      (j) => (j.decoder = { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false }),
    ],
    [
      "fields absent where HF's default is ours",
      (j) => {
        delete j.model.ignore_merges;
        delete j.model.byte_fallback;
        delete j.model.dropout;
        delete j.truncation;
      },
    ],
  ];
  for (const [name, change] of cases) {
    test(name, async () => {
      const j = variant(change);
      const want = await hfIds(j);
      expect(Tokenizer.fromJSON(j, "t.json").encode(TEXT)).toEqual(want);
    });
  }

  test("the normalizer is the file's: null and NFC give different ids here", async () => {
    expect(await hfIds(variant((j) => (j.normalizer = null)))).not.toEqual(await hfIds(base));
    expect(Tokenizer.fromJSON(variant((j) => (j.normalizer = null))).encode(TEXT)).not.toEqual(
      Tokenizer.fromJSON(base).encode(TEXT),
    );
  });
});

describe("refused settings change Hugging Face's ids", () => {
  const cases: [string, (j: any) => void, string][] = [
    [
      "add_prefix_space",
      (j) => (j.pre_tokenizer.pretokenizers[1].add_prefix_space = true),
      "pre_tokenizer.pretokenizers[1].add_prefix_space is true; bunlm's encoder implements false only",
    ],
    [
      "use_regex",
      (j) => (j.pre_tokenizer.pretokenizers[1].use_regex = true),
      "pre_tokenizer.pretokenizers[1].use_regex is true; bunlm's encoder implements false only",
    ],
    [
      "Split behavior",
      (j) => (j.pre_tokenizer.pretokenizers[0].behavior = "Removed"),
      `pre_tokenizer.pretokenizers[0].behavior is "Removed"; bunlm's encoder implements "Isolated" only`,
    ],
    [
      "Split pattern",
      (j) => (j.pre_tokenizer.pretokenizers[0].pattern = { Regex: "\\s+" }),
      `pre_tokenizer.pretokenizers[0].pattern is {"Regex":"\\\\s+"}; bunlm's encoder implements its own split pattern (pretokenize.ts SPLIT_PATTERN) only`,
    ],
    [
      "normalizer Lowercase",
      (j) => (j.normalizer = { type: "Lowercase" }),
      `normalizer.type is "Lowercase"; bunlm's encoder implements NFC, NFD, NFKC, NFKD or null only`,
    ],
    ["dropout", (j) => (j.model.dropout = 0.5), "model.dropout is 0.5; bunlm's encoder implements null only"],
    [
      "added token lstrip",
      (j) => (j.added_tokens[2].lstrip = true),
      "added_tokens[2].lstrip is true; bunlm's encoder implements false only",
    ],
    [
      "added token rstrip",
      (j) => (j.added_tokens[2].rstrip = true),
      "added_tokens[2].rstrip is true; bunlm's encoder implements false only",
    ],
    [
      "added token single_word",
      (j) => (j.added_tokens[0].single_word = true),
      "added_tokens[0].single_word is true; bunlm's encoder implements false only",
    ],
    [
      "truncation",
      (j) => (j.truncation = { direction: "Right", max_length: 5, strategy: "LongestFirst", stride: 0 }),
      "truncation is {",
    ],
    [
      "a TemplateProcessing post_processor",
      (j) =>
        (j.post_processor = {
          type: "TemplateProcessing",
          single: [{ SpecialToken: { id: "<|endoftext|>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
          pair: [{ Sequence: { id: "A", type_id: 0 } }, { Sequence: { id: "B", type_id: 1 } }],
          special_tokens: {
            "<|endoftext|>": { id: "<|endoftext|>", ids: [j.added_tokens[0].id], tokens: ["<|endoftext|>"] },
          },
        }),
      `post_processor.type is "TemplateProcessing"; bunlm's encoder implements null or "ByteLevel" only`,
    ],
  ];
  for (const [name, change, message] of cases) {
    test(name, async () => {
      const j = variant(change);
      expect(await hfIds(j)).not.toEqual(await hfIds(base));
      expect(() => Tokenizer.fromJSON(j, "runs/tok/tokenizer.json")).toThrow(`runs/tok/tokenizer.json: ${message}`);
    });
  }
});

describe("refused without an HF comparison (settings HF rejects, crashes on, or that only bite on some vocabularies)", () => {
  const cases: [string, (j: any) => void, string][] = [
    [
      "model type",
      (j) => (j.model.type = "WordPiece"),
      `model.type is "WordPiece"; bunlm's encoder implements "BPE" only`,
    ],
    [
      "byte_fallback",
      (j) => (j.model.byte_fallback = true),
      "model.byte_fallback is true; bunlm's encoder implements false only",
    ],
    [
      "ignore_merges",
      (j) => (j.model.ignore_merges = true),
      "model.ignore_merges is true; bunlm's encoder implements false only",
    ],
    [
      "continuing_subword_prefix",
      (j) => (j.model.continuing_subword_prefix = "##"),
      `model.continuing_subword_prefix is "##"; bunlm's encoder implements null only`,
    ],
    [
      "end_of_word_suffix",
      (j) => (j.model.end_of_word_suffix = "</w>"),
      `model.end_of_word_suffix is "</w>"; bunlm's encoder implements null only`,
    ],
    [
      "invert",
      (j) => (j.pre_tokenizer.pretokenizers[0].invert = true),
      "pre_tokenizer.pretokenizers[0].invert is true; bunlm's encoder implements false only",
    ],
    [
      "ByteLevel add_prefix_space absent (HF's default is true)",
      (j) => delete j.pre_tokenizer.pretokenizers[1].add_prefix_space,
      "pre_tokenizer.pretokenizers[1].add_prefix_space is missing; bunlm's encoder implements false only",
    ],
    [
      "a third pre-tokenizer",
      (j) => j.pre_tokenizer.pretokenizers.push({ type: "Digits", individual_digits: true }),
      "pre_tokenizer.pretokenizers is [{",
    ],
    [
      "a bare ByteLevel pre-tokenizer",
      (j) => (j.pre_tokenizer = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true }),
      `pre_tokenizer.type is "ByteLevel"; bunlm's encoder implements "Sequence" only`,
    ],
    ["no decoder", (j) => (j.decoder = null), "decoder is null; bunlm's encoder implements ByteLevel only"],
    [
      "padding",
      (j) => (j.padding = { strategy: "BatchLongest" }),
      `padding is {"strategy":"BatchLongest"}; bunlm's encoder implements null only`,
    ],
    [
      "added token normalized",
      (j) => (j.added_tokens[1].normalized = true),
      "added_tokens[1].normalized is true; bunlm's encoder implements false only",
    ],
    [
      "added token not special",
      (j) => (j.added_tokens[1].special = false),
      "added_tokens[1].special is false; bunlm's encoder implements true only",
    ],
  ];
  for (const [name, change, message] of cases) {
    test(name, () => {
      expect(() => Tokenizer.fromJSON(variant(change), "t.json")).toThrow(`t.json: ${message}`);
    });
  }

  test("the whole line: file, field path, value, what is implemented, where such a file comes from", () => {
    const j = variant((j) => (j.pre_tokenizer.pretokenizers[1].add_prefix_space = true));
    let msg = "";
    try {
      Tokenizer.fromJSON(j, "runs/tok/tokenizer.json");
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toBe(
      "runs/tok/tokenizer.json: pre_tokenizer.pretokenizers[1].add_prefix_space is true; bunlm's encoder implements false only (a tokenizer made by `tokenize train`)",
    );
  });

  test("structural damage names the field", () => {
    const cases: [(j: any) => void, string][] = [
      [(j) => (j.model.merges[3] = 7), 't.json: model.merges[3] is 7; expected "left right" or ["left", "right"]'],
      [(j) => (j.model.merges[0] = "zz qq"), 't.json: model.merges[0] ("zz" "qq") names a token not in the vocabulary'],
      [(j) => delete j.model.vocab["Ġ"], "t.json: model.vocab has no token with id"],
      [(j) => (j.model.vocab.a = -1), 't.json: model.vocab["a"] is -1; expected a non-negative whole number'],
      [(j) => (j.added_tokens[0].id = 5), "t.json: added_tokens[0].id is 5, which"],
      [(j) => (j.model = undefined), "t.json: model is missing; bunlm's encoder implements a BPE model only"],
    ];
    for (const [change, message] of cases) expect(() => Tokenizer.fromJSON(variant(change), "t.json")).toThrow(message);
    expect(() => Tokenizer.fromJSON([1, 2], "t.json")).toThrow("t.json: is not a JSON object");
  });
});
