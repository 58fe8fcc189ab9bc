// tokenize against files and flags it cannot trust: a tokenizer.json asking for rules our encoder
// does not run, malformed tokenizer files, decode's input files, and numbers that are not numbers or
// would start 100000 workers. Each case runs as a user runs it, from a working directory whose files
// must come out untouched.
import { beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { trainTokenizer } from "../../lib/tokenizer/train.ts";
import { readDocs } from "../../lib/io/readers.ts";
import { Tokenizer } from "../../lib/tokenizer/tokenizer.ts";
import { run, expectRefusal, snapshot, expectUnchanged, tmp, root } from "./_helpers.ts";

const TOK = join(root, "cmd", "tokenize.ts");
let work = "";
let tok: Tokenizer;

/** Run tokenize in the working directory and check that it left every file there as it was. */
function tokenize(args: string[], stdin?: string) {
  const before = snapshot(work);
  const r = run([TOK, ...args], { cwd: work, stdin, timeoutMs: 20_000 });
  expectUnchanged(before, work);
  return r;
}

/** A copy of the good tokenizer directory with tokenizer.json changed. */
function variant(name: string, change: (j: any) => void): string {
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  const j = JSON.parse(readFileSync(join(work, "tok", "tokenizer.json"), "utf8"));
  change(j);
  writeFileSync(join(dir, "tokenizer.json"), JSON.stringify(j));
  copyFileSync(join(work, "tok", "tokenizer_config.json"), join(dir, "tokenizer_config.json"));
  return name;
}

beforeAll(async () => {
  work = tmp("tok-hostile");
  await trainTokenizer(
    readDocs([join(root, "examples", "data", "bilingual.txt")], { lines: true }),
    join(work, "tok"),
    { vocabSize: 400 },
  );
  tok = Tokenizer.fromDir(join(work, "tok"));
  writeFileSync(join(work, "in.txt"), "river mill\n河水\n");
});

describe("tokenizer.json settings bunlm does not run", () => {
  const cases: [string, (j: any) => void, string][] = [
    [
      "split invert",
      (j) => (j.pre_tokenizer.pretokenizers[0].invert = true),
      "pre_tokenizer\\.pretokenizers\\[0\\]\\.invert is true; bunlm reads false only$",
    ],
    [
      "decoder",
      (j) => (j.decoder = { type: "WordPiece", prefix: "##" }),
      `decoder\\.type is "WordPiece"; bunlm reads Sequence, ByteLevel, Replace, ByteFallback, Fuse, Strip or Metaspace$`,
    ],
    [
      "model type",
      (j) => (j.model.type = "Unigram"),
      `model\\.type is "Unigram"; bunlm reads "BPE" only \\(WordPiece, Unigram and WordLevel models are not supported\\)$`,
    ],
    ["dropout", (j) => (j.model.dropout = 0.1), "model\\.dropout is 0\\.1; bunlm reads null only$"],
    [
      "subword prefix",
      (j) => (j.model.continuing_subword_prefix = "##"),
      `model\\.continuing_subword_prefix is "##"; bunlm reads null or "" only$`,
    ],
    [
      "word suffix",
      (j) => (j.model.end_of_word_suffix = "</w>"),
      `model\\.end_of_word_suffix is "</w>"; bunlm reads null or "" only$`,
    ],
    [
      "added token single_word",
      (j) => (j.added_tokens[0].single_word = true),
      "added_tokens\\[0\\]\\.single_word is true; bunlm reads false only$",
    ],
  ];
  for (const [name, change, message] of cases) {
    test(name, () => {
      const dir = variant(name.replace(/ /g, "_"), change);
      const r = tokenize(["encode", "--tokenizer", dir, "--lines", "in.txt"]);
      expectRefusal(r, new RegExp(`^bunlm: error: ${dir}/tokenizer\\.json: (${message})`));
      expect(r.out).toBe("");
    });
  }

  test("decode loads the same way: decode refuses too", () => {
    const dir = variant("invert_decode", (j) => (j.pre_tokenizer.pretokenizers[0].invert = true));
    expectRefusal(
      tokenize(["decode", "--tokenizer", dir], '{"ids":[1]}\n'),
      /invert_decode\/tokenizer\.json: pre_tokenizer\.pretokenizers\[0\]\.invert is true/,
    );
  });

  test("a setting the fast path does not run (a prefix space) runs through the file's own pipeline", () => {
    const dir = variant("prefix_space", (j) => (j.pre_tokenizer.pretokenizers[1].add_prefix_space = true));
    const r = tokenize(["encode", "--tokenizer", dir, "--lines", "in.txt"]);
    expect(r.code).toBe(0);
    const first = JSON.parse(r.out.split("\n")[0]!).ids;
    expect(first).toEqual(Tokenizer.fromDir(join(work, dir)).encode("river mill"));
    expect(first).not.toEqual(tok.encode("river mill")); // " river" is not "river"
  });

  test("a supported variant (no normalizer) loads and runs the file's rule", () => {
    const dir = variant("no_normalizer", (j) => (j.normalizer = null));
    writeFileSync(join(work, "nfd.txt"), "cafe\u0301\n");
    const r = tokenize(["encode", "--tokenizer", dir, "--lines", "nfd.txt"]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out).ids).toEqual(Tokenizer.fromDir(join(work, dir)).encode("cafe\u0301"));
    expect(JSON.parse(r.out).ids).not.toEqual(tok.encode("cafe\u0301")); // NFC would have composed é
  });
});

describe("malformed tokenizer files: one line naming the file", () => {
  test("tokenizer.json that is not JSON", () => {
    mkdirSync(join(work, "notjson"), { recursive: true });
    writeFileSync(join(work, "notjson", "tokenizer.json"), "not json at all");
    expectRefusal(
      tokenize(["encode", "--tokenizer", "notjson", "in.txt"]),
      /^bunlm: error: notjson\/tokenizer\.json: not valid JSON \(/,
    );
  });

  test("tokenizer.json holding an array", () => {
    mkdirSync(join(work, "array"), { recursive: true });
    writeFileSync(join(work, "array", "tokenizer.json"), "[1, 2]");
    expectRefusal(
      tokenize(["encode", "--tokenizer", "array", "in.txt"]),
      /^bunlm: error: array\/tokenizer\.json: is not a JSON object$/,
    );
  });

  test("tokenizer_config.json that is not JSON", () => {
    const dir = variant("badcfg", () => {});
    writeFileSync(join(work, dir, "tokenizer_config.json"), "not json");
    expectRefusal(
      tokenize(["encode", "--tokenizer", dir, "in.txt"]),
      /^bunlm: error: badcfg\/tokenizer_config\.json: not valid JSON \(/,
    );
  });

  test("tokenizer_config.json whose chat template is not a string", () => {
    const dir = variant("badtemplate", () => {});
    writeFileSync(join(work, dir, "tokenizer_config.json"), JSON.stringify({ chat_template: 5 }));
    expectRefusal(
      tokenize(["encode", "--tokenizer", dir, "in.txt"]),
      /^bunlm: error: badtemplate\/tokenizer_config\.json: chat_template is 5; expected a string$/,
    );
  });

  test("a tokenizer.json that is not UTF-8", () => {
    mkdirSync(join(work, "binary"), { recursive: true });
    writeFileSync(join(work, "binary", "tokenizer.json"), Uint8Array.from([0x7b, 0xff, 0xfe, 0x7d]));
    expectRefusal(
      tokenize(["encode", "--tokenizer", "binary", "in.txt"]),
      /^bunlm: error: binary\/tokenizer\.json: not UTF-8 text/,
    );
  });

  test("--tokenizer naming the file instead of its directory", () => {
    expectRefusal(
      tokenize(["encode", "--tokenizer", "tok/tokenizer.json", "in.txt"]),
      /^bunlm: error: tok\/tokenizer\.json: is a file; give the directory that holds tokenizer\.json$/,
    );
  });
});

describe("decode reads its INPUT files", () => {
  test("files in order, then - for stdin", () => {
    const a = tok.encode("river"),
      b = tok.encode("河水"),
      c = tok.encode("mill");
    writeFileSync(join(work, "a.jsonl"), JSON.stringify({ ids: a }) + "\n");
    writeFileSync(join(work, "b.jsonl"), JSON.stringify({ ids: b }) + "\n");
    const r = tokenize(["decode", "--tokenizer", "tok", "a.jsonl", "-", "b.jsonl"], JSON.stringify({ ids: c }) + "\n");
    expect(r.code).toBe(0);
    expect(
      r.out
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l).text),
    ).toEqual(["river", "mill", "河水"]);
    expect(JSON.parse(r.err.trim())).toMatchObject({ event: "summary", documents: 3 });
    expect(JSON.parse(r.err.trim()).replaced_invalid_utf8).toBeUndefined();
  });

  test("no INPUT: stdin", () => {
    const r = tokenize(["decode", "--tokenizer", "tok"], JSON.stringify({ ids: tok.encode("mill") }) + "\n");
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toEqual({ text: "mill" });
  });

  test("an error names the file and the line", () => {
    writeFileSync(join(work, "c.jsonl"), `${JSON.stringify({ ids: [1] })}\n\n{"ids": [1, "x"]}\n`);
    expectRefusal(
      tokenize(["decode", "--tokenizer", "tok", "a.jsonl", "c.jsonl"]),
      /^bunlm: error: c\.jsonl:3: expected \{"ids": \[non-negative integers\]\}$/,
    );
    writeFileSync(join(work, "d.jsonl"), `${JSON.stringify({ ids: [1, 400] })}\n`);
    expectRefusal(
      tokenize(["decode", "--tokenizer", "tok", "d.jsonl"]),
      /^bunlm: error: d\.jsonl:1: token id 400 is outside the vocabulary \(size 400\)$/,
    );
    expectRefusal(
      tokenize(["decode", "--tokenizer", "tok", "missing.jsonl"]),
      /^bunlm: error: missing\.jsonl: no such file$/,
    );
  });
});

describe("stdin that is not what it seems", () => {
  test("a byte order mark before JSONL (a Windows editor's): still JSONL rows, not one text document", () => {
    const r = run([TOK, "encode", "--tokenizer", "tok", "-"], {
      cwd: work,
      stdin: Uint8Array.from([0xef, 0xbb, 0xbf, ...new TextEncoder().encode('{"text":"river","n":1}\n')]),
    });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toEqual({ ids: tok.encode("river"), n: 1 });
  });

  test("a template that starts with { is refused with the flag that reads it as text, and nothing is printed", () => {
    const r = tokenize(["encode", "--tokenizer", "tok", "--lines", "-"], "{{ name }}\nHello\n");
    expectRefusal(r, /^bunlm: error: <stdin>:1: not valid JSON \(.*\); .*give --format txt to read it as text$/);
    expect(r.out).toBe("");
  });

  test("JSONL on stdin without the field names the fields it has", () => {
    expectRefusal(
      tokenize(["encode", "--tokenizer", "tok", "-"], '{"body":"x"}\n'),
      /^bunlm: error: <stdin>:1: no field "text" \(fields: body\); choose one with --field$/,
    );
  });
});

describe("numeric flags", () => {
  const cases: [string, string[], RegExp][] = [
    [
      "--threads abc",
      ["encode", "--tokenizer", "tok", "--threads", "abc", "in.txt"],
      /^bunlm: error: option --threads: expected a whole number, got "abc"$/,
    ],
    [
      "--threads -1",
      ["encode", "--tokenizer", "tok", "--threads", "-1", "in.txt"],
      /^bunlm: error: option --threads: -1 is negative; give 0 \(encode on the main thread\) or more$/,
    ],
    [
      "--threads 1.5",
      ["encode", "--tokenizer", "tok", "--threads", "1.5", "in.txt"],
      /^bunlm: error: option --threads: expected a whole number, got 1\.5$/,
    ],
    [
      "--vocab-size abc",
      ["train", "--vocab-size", "abc", "--out", "t", "in.txt"],
      /^bunlm: error: option --vocab-size: expected a whole number, got "abc"$/,
    ],
    [
      "--vocab-size 300.5",
      ["train", "--vocab-size", "300.5", "--out", "t", "in.txt"],
      /^bunlm: error: option --vocab-size: expected a whole number, got 300\.5$/,
    ],
    [
      "--vocab-size 100",
      ["train", "--vocab-size", "100", "--out", "t", "in.txt"],
      /^bunlm: error: option --vocab-size: 100 is too small: the 256 byte tokens and 8 special tokens need at least 264$/,
    ],
    [
      "--min-frequency 0",
      ["train", "--vocab-size", "300", "--min-frequency", "0", "--out", "t", "in.txt"],
      /^bunlm: error: option --min-frequency: 0 is too small: a pair must occur at least once to be merged$/,
    ],
    [
      "--min-frequency x",
      ["train", "--vocab-size", "300", "--min-frequency", "x", "--out", "t", "in.txt"],
      /^bunlm: error: option --min-frequency: expected a whole number, got "x"$/,
    ],
  ];
  for (const [name, args, re] of cases) test(name, () => expectRefusal(tokenize(args), re));

  test("--threads 100000 on a tiny file: capped at the cores with one note, same records as 0 threads", () => {
    const cores = navigator.hardwareConcurrency;
    const many = tokenize(["encode", "--tokenizer", "tok", "--lines", "--threads", "100000", "in.txt"]);
    const none = tokenize(["encode", "--tokenizer", "tok", "--lines", "--threads", "0", "in.txt"]);
    expect(many.code).toBe(0);
    expect(many.out).toBe(none.out);
    const err = many.err.trim().split("\n");
    expect(err).toHaveLength(2);
    expect(err[0]).toBe(`bunlm: note: --threads 100000 is more than this machine's ${cores} cores; using ${cores}`);
    expect(JSON.parse(err[1]!)).toMatchObject({ event: "summary", documents: 2 });
  });
});
