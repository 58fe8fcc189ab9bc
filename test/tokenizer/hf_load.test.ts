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

describe("settings the fast path does not run go through the file's own pipeline, with Hugging Face's ids", () => {
  const cases: [string, (j: any) => void][] = [
    ["add_prefix_space", (j) => (j.pre_tokenizer.pretokenizers[1].add_prefix_space = true)],
    ["use_regex", (j) => (j.pre_tokenizer.pretokenizers[1].use_regex = true)],
    ["Split behavior Removed", (j) => (j.pre_tokenizer.pretokenizers[0].behavior = "Removed")],
    ["Split behavior MergedWithPrevious", (j) => (j.pre_tokenizer.pretokenizers[0].behavior = "MergedWithPrevious")],
    ["Split behavior MergedWithNext", (j) => (j.pre_tokenizer.pretokenizers[0].behavior = "MergedWithNext")],
    ["Split behavior Contiguous", (j) => (j.pre_tokenizer.pretokenizers[0].behavior = "Contiguous")],
    ["Split pattern", (j) => (j.pre_tokenizer.pretokenizers[0].pattern = { Regex: "\\s+" })],
    ["normalizer Lowercase", (j) => (j.normalizer = { type: "Lowercase" })],
    ["added token lstrip", (j) => (j.added_tokens[2].lstrip = true)],
    ["added token rstrip", (j) => (j.added_tokens[2].rstrip = true)],
    ["added token normalized", (j) => (j.added_tokens[1].normalized = true)],
    ["added token not special", (j) => (j.added_tokens[1].special = false)],
    ["byte_fallback", (j) => (j.model.byte_fallback = true)],
    ["ignore_merges", (j) => (j.model.ignore_merges = true)],
    [
      "a Digits pre-tokenizer too",
      (j) => j.pre_tokenizer.pretokenizers.splice(1, 0, { type: "Digits", individual_digits: true }),
    ],
    [
      "a bare ByteLevel pre-tokenizer",
      (j) => (j.pre_tokenizer = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true }),
    ],
    ["no decoder", (j) => (j.decoder = null)],
    [
      "normalizer Sequence of Prepend and Replace",
      (j) =>
        (j.normalizer = {
          type: "Sequence",
          normalizers: [
            { type: "Prepend", prepend: "_" },
            { type: "Replace", pattern: { String: "e" }, content: "E" },
          ],
        }),
    ],
  ];
  for (const [name, change] of cases) {
    test(name, async () => {
      const j = variant(change);
      const hf = HfTokenizer.fromString(JSON.stringify(j));
      const want = (await hf.encode(TEXT, null, { addSpecialTokens: false })).getIds();
      const t = Tokenizer.fromJSON(j, "t.json");
      expect(t.isForeign).toBe(true);
      expect(t.encode(TEXT)).toEqual(want);
      for (const skip of [false, true]) expect(t.decode(want, skip)).toBe(await hf.decode(want, skip));
    });
  }
});

describe("refused settings name the field", () => {
  const cases: [string, (j: any) => void, string][] = [
    ["dropout", (j) => (j.model.dropout = 0.5), "model.dropout is 0.5; bunlm reads null only"],
    [
      "added token single_word",
      (j) => (j.added_tokens[0].single_word = true),
      "added_tokens[0].single_word is true; bunlm reads false only",
    ],
    [
      "model type",
      (j) => (j.model.type = "WordPiece"),
      `model.type is "WordPiece"; bunlm reads "BPE" only (WordPiece, Unigram and WordLevel models are not supported)`,
    ],
    [
      "continuing_subword_prefix",
      (j) => (j.model.continuing_subword_prefix = "##"),
      `model.continuing_subword_prefix is "##"; bunlm reads null or "" only`,
    ],
    [
      "end_of_word_suffix",
      (j) => (j.model.end_of_word_suffix = "</w>"),
      `model.end_of_word_suffix is "</w>"; bunlm reads null or "" only`,
    ],
    [
      "invert",
      (j) => (j.pre_tokenizer.pretokenizers[0].invert = true),
      "pre_tokenizer.pretokenizers[0].invert is true; bunlm reads false only",
    ],
    [
      "an Oniguruma-only pattern",
      (j) => (j.pre_tokenizer.pretokenizers[0].pattern = { Regex: "(?>a+)b" }),
      `pre_tokenizer.pretokenizers[0].pattern is {"Regex":"(?>a+)b"}; bunlm cannot run this Oniguruma pattern in JavaScript`,
    ],
  ];
  for (const [name, change, message] of cases) {
    test(name, () => {
      expect(() => Tokenizer.fromJSON(variant(change), "t.json")).toThrow(`t.json: ${message}`);
    });
  }

  test("the whole line: file, field path, value, what bunlm reads", () => {
    const j = variant((j) => (j.model.dropout = 0.25));
    let msg = "";
    try {
      Tokenizer.fromJSON(j, "runs/tok/tokenizer.json");
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toBe("runs/tok/tokenizer.json: model.dropout is 0.25; bunlm reads null only");
  });

  test("structural damage names the field", () => {
    const cases: [(j: any) => void, string][] = [
      [(j) => (j.model.merges[3] = 7), 't.json: model.merges[3] is 7; expected "left right" or ["left", "right"]'],
      [(j) => (j.model.merges[0] = "zz qq"), 't.json: model.merges[0] ("zz" "qq") names a token not in the vocabulary'],
      [(j) => delete j.model.vocab["Ġ"], "t.json: model.vocab has no token for byte 32"],
      [(j) => (j.model.vocab.a = -1), 't.json: model.vocab["a"] is -1; expected a non-negative whole number'],
      [(j) => (j.added_tokens[0].id = 5), "t.json: added_tokens[0].id is 5, which"],
      [(j) => (j.model = undefined), "t.json: model is missing; bunlm reads a BPE model"],
    ];
    for (const [change, message] of cases) expect(() => Tokenizer.fromJSON(variant(change), "t.json")).toThrow(message);
    expect(() => Tokenizer.fromJSON([1, 2], "t.json")).toThrow("t.json: is not a JSON object");
  });
});
