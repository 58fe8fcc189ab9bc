// The tokenize command's jobs called directly (lib/tokenizer/tokenize.ts): records written to a sink,
// exact ids from a byte-level tokenizer (an id is a UTF-8 byte), the summaries' counts, and the
// refusals of flags and rows. Reading stdin is covered end to end in test/cmd/tokenize.test.ts.
import { beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  checkMessages,
  type DecodeArgs,
  type EncodeArgs,
  inputsOf,
  type Sink,
  threadsFor,
  tokenizeDecode,
  tokenizeEncode,
  tokenizeTrain,
  type TrainArgs,
} from "../../lib/tokenizer/tokenize.ts";
import { Tokenizer } from "../../lib/tokenizer/tokenizer.ts";
import { byteTokenizer, bytes, EOS, IM_END, IM_START } from "../data/pack_test_tokenizer.ts";

const tmp = mkdtempSync(join(tmpdir(), "bunlm-tokjobs-"));
let dir = "";
let tok: Tokenizer;

beforeAll(async () => {
  dir = await byteTokenizer();
  tok = Tokenizer.fromDir(dir);
});

function file(name: string, text: string | Uint8Array): string {
  const p = join(tmp, name);
  writeFileSync(p, text);
  return p;
}

/** A sink that keeps the records, parsed. */
function sink(): Sink & { rows: any[]; text: string } {
  const s = {
    rows: [] as any[],
    text: "",
    write(line: string) {
      s.text += line;
      s.rows.push(JSON.parse(line));
    },
  };
  return s;
}

const ENCODE: EncodeArgs = {
  field: "text",
  lines: false,
  format: "auto",
  lossy: false,
  "add-eos": false,
  chat: false,
  threads: "auto",
};

describe("tokenizeEncode", () => {
  test("JSONL rows: ids first, the row's other fields after, the text field left out", async () => {
    const inp = file("rows.jsonl", '{"text":"hé","n":1}\n\n{"text":"a","tag":"x","text2":"b"}\n');
    const out = sink();
    const s = await tokenizeEncode(tok, dir, [inp], ENCODE, out);
    expect(out.text).toBe('{"ids":[104,195,169],"n":1}\n{"ids":[97],"tag":"x","text2":"b"}\n');
    // "hé" is 3 bytes, "a" 1; a byte-level tokenizer gives a token per byte
    expect(s).toMatchObject({ event: "summary", documents: 2, bytes: 4, tokens: 4, bytes_per_token: 1 });
    expect(s.replaced_invalid_utf8).toBeUndefined();
  });

  test("--field, --add-eos, and a text file read per line", async () => {
    const rows = file("body.jsonl", '{"body":"ab"}\n');
    const lines = file("l.txt", "x\n\ny z\n");
    const a = sink(),
      b = sink();
    await tokenizeEncode(tok, dir, [rows], { ...ENCODE, field: "body", "add-eos": true }, a);
    const s = await tokenizeEncode(tok, dir, [lines], { ...ENCODE, lines: true }, b);
    expect(a.rows).toEqual([{ ids: [97, 98, EOS] }]);
    expect(b.rows).toEqual([{ ids: [120] }, { ids: bytes("y z") }]); // the blank line is no document
    expect(s.documents).toBe(2);
  });

  test("worker threads give the same records, in order, as the main thread", async () => {
    const texts = Array.from({ length: 300 }, (_, i) => `row ${i} 河${"w".repeat(i % 5)}`);
    const inp = file("many.jsonl", texts.map((text, i) => JSON.stringify({ text, i })).join("\n"));
    const one = sink(),
      two = sink();
    await tokenizeEncode(tok, dir, [inp], { ...ENCODE, threads: "0" }, one);
    await tokenizeEncode(tok, dir, [inp], { ...ENCODE, threads: "2" }, two);
    expect(two.text).toBe(one.text);
    expect(two.rows[299]).toEqual({ ids: bytes(texts[299]!), i: 299 });
  });

  test("--lossy: each invalid sequence becomes U+FFFD (bytes ef bf bd) and is counted", async () => {
    const inp = file("bad.txt", Uint8Array.from([0x61, 0xff, 0x62, 0xc3]));
    const out = sink();
    const s = await tokenizeEncode(tok, dir, [inp], { ...ENCODE, lossy: true }, out);
    expect(out.rows).toEqual([{ ids: [97, 0xef, 0xbf, 0xbd, 98, 0xef, 0xbf, 0xbd] }]);
    expect(s.replaced_invalid_utf8).toBe(2);
  });

  test("--chat: the template's ids, the mask on the reply and its end-of-turn token, other fields kept", async () => {
    const row = {
      messages: [
        { role: "user", content: "hi" },
        { role: "assistant", content: "ok" },
      ],
      id: "q1",
    };
    const inp = file("chat.jsonl", `${JSON.stringify(row)}\n`);
    const out = sink();
    await tokenizeEncode(tok, dir, [inp], { ...ENCODE, chat: true }, out);
    const user = [IM_START, ...bytes("user\nhi"), IM_END, 10];
    const reply = [IM_START, ...bytes("assistant\n"), ...bytes("ok"), IM_END, 10];
    expect(out.rows).toEqual([
      {
        ids: [...user, ...reply],
        assistant_mask: [...user.map(() => 0), ...bytes("assistant\n").map(() => 0), 0, 1, 1, 1, 0],
        id: "q1",
      },
    ]);
  });

  test("refusals: a bad --threads, --chat with a format that is not JSONL", async () => {
    const inp = file("one.txt", "a");
    await expect(tokenizeEncode(tok, dir, [inp], { ...ENCODE, threads: "-1" }, sink())).rejects.toThrow(
      "option --threads: -1 is negative; give 0 (encode on the main thread) or more",
    );
    await expect(tokenizeEncode(tok, dir, [inp], { ...ENCODE, threads: "two" }, sink())).rejects.toThrow(
      'option --threads: expected a whole number, got "two"',
    );
    await expect(tokenizeEncode(tok, dir, [inp], { ...ENCODE, chat: true, format: "txt" }, sink())).rejects.toThrow(
      '--format txt: --chat reads JSONL rows of {"messages": [...]}',
    );
  });
});

describe("threadsFor", () => {
  const cores = navigator.hardwareConcurrency;
  test("auto: none under 4 MB (or from stdin, size unknown), every core above", () => {
    expect(threadsFor(undefined, 4 << 20)).toBe(0);
    expect(threadsFor(undefined, undefined)).toBe(0);
    expect(threadsFor(undefined, (4 << 20) + 1)).toBe(cores);
  });
  test("asked: as asked, capped at the cores", () => {
    expect(threadsFor(0, 1 << 30)).toBe(0);
    expect(threadsFor(1, 10)).toBe(1);
    expect(threadsFor(cores + 5, 10)).toBe(cores);
  });
});

describe("checkMessages and inputsOf", () => {
  test("messages: roles and contents checked, extra keys dropped", () => {
    expect(checkMessages([{ role: "user", content: "a", name: "x" }], "f:1")).toEqual([{ role: "user", content: "a" }]);
    expect(() => checkMessages([], "f:1")).toThrow('f:1: expected "messages": a non-empty list of {"role","content"}');
    expect(() => checkMessages([{ role: "user" }], "f:2")).toThrow('f:2: messages[0] has no string "content"');
    expect(() => checkMessages([{ role: "bot", content: "" }], "f:3")).toThrow(
      'f:3: messages[0] has role "bot"; expected one of system, user, assistant, tool',
    );
  });

  test("inputs: none is refused (decode: stdin), stdin only once", () => {
    expect(() => inputsOf([])).toThrow("no INPUT given (files, or - for stdin)");
    expect(inputsOf([], true)).toEqual(["-"]);
    expect(inputsOf(["a", "-", "b"])).toEqual(["a", "-", "b"]);
    expect(() => inputsOf(["-", "a", "-"])).toThrow("- (stdin) is given twice; it can be read once");
  });
});

describe("tokenizeDecode", () => {
  const DECODE: DecodeArgs = { "skip-special": false, lossy: false };
  test("ids back to text, specials kept or skipped; the summary counts the text's bytes", async () => {
    const inp = file("ids.jsonl", `${JSON.stringify({ ids: [...bytes("hé"), EOS] })}\n\n{"ids":[]}\n`);
    const a = sink(),
      b = sink();
    const s = await tokenizeDecode(tok, [inp], DECODE, a);
    await tokenizeDecode(tok, [inp], { ...DECODE, "skip-special": true }, b);
    expect(a.rows).toEqual([{ text: "hé<|endoftext|>" }, { text: "" }]);
    expect(b.rows).toEqual([{ text: "hé" }, { text: "" }]);
    expect(s).toMatchObject({ documents: 2, tokens: 4, bytes: 3 + "<|endoftext|>".length });
  });

  test("refusals name the file and line", async () => {
    const neg = file("neg.jsonl", '{"ids":[1]}\n{"ids":[-1]}\n');
    const big = file("big.jsonl", '{"ids":[264]}\n');
    await expect(tokenizeDecode(tok, [neg], DECODE, sink())).rejects.toThrow(
      `${neg}:2: expected {"ids": [non-negative integers]}`,
    );
    await expect(tokenizeDecode(tok, [big], DECODE, sink())).rejects.toThrow(
      `${big}:1: token id 264 is outside the vocabulary (size 264)`,
    );
  });
});

describe("tokenizeTrain", () => {
  const TRAIN = (out: string): TrainArgs => ({
    field: "text",
    lines: true,
    format: "auto",
    lossy: false,
    out,
    overwrite: false,
    "vocab-size": "268",
    "min-frequency": "2",
    special: ["<|a|>,<|b|>"],
  });

  test("writes the tokenizer and returns the summary line; --special splits on commas", async () => {
    const corpus = file("corpus.txt", "abab\nabab\n");
    const out = join(tmp, "trained");
    const s = await tokenizeTrain([corpus], TRAIN(out));
    // 256 bytes + 10 specials (8 built in, 2 asked for) = 266, so 2 merges fit in 268: "ab", then "abab"
    expect(s).toMatchObject({ event: "summary", documents: 2, bytes: 8, tokens: 2, vocab_size: 268, merges: 2, out });
    expect(readdirSync(out).sort()).toEqual(["tokenizer.json", "tokenizer_config.json"]);
    const t = Tokenizer.fromDir(out);
    expect(t.encode("<|b|>")).toEqual([t.specialId("<|b|>")]);
  });

  test("--out holding other files is refused before anything is read", async () => {
    const out = join(tmp, "busy");
    mkdirSync(out);
    writeFileSync(join(out, "notes.txt"), "mine");
    await expect(tokenizeTrain([join(tmp, "nope.txt")], TRAIN(out))).rejects.toThrow(
      `--out: ${out} holds files that \`tokenize train\` did not write (notes.txt); give a new or empty directory`,
    );
    expect(readdirSync(out)).toEqual(["notes.txt"]);
  });

  test("numeric flags name themselves", async () => {
    const out = join(tmp, "never");
    await expect(tokenizeTrain(["x"], { ...TRAIN(out), "vocab-size": "265" })).rejects.toThrow(
      "option --vocab-size: 265 is too small: the 256 byte tokens and 10 special tokens need at least 266",
    );
    await expect(tokenizeTrain(["x"], { ...TRAIN(out), "min-frequency": "1.5" })).rejects.toThrow(
      "option --min-frequency: expected a whole number, got 1.5",
    );
    expect(existsSync(out)).toBe(false);
  });
});
