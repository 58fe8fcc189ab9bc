// Text that is not UTF-8: every reader (lines, whole files, JSONL, parquet strings, stdin) refuses it
// with the file, line and byte of the first bad sequence, instead of training on U+FFFD; --lossy
// replaces as TextDecoder does and reports how many it replaced. The commands run as a user runs them.
import { beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parquetWriteFile } from "hyparquet-writer";
import { invalidUtf8, lines, readDocs, readRows } from "../../lib/io/readers.ts";
import { trainTokenizer } from "../../lib/tokenizer/train.ts";
import { Tokenizer } from "../../lib/tokenizer/tokenizer.ts";
import { Rng } from "../../lib/base/rng.ts";
import { run, expectRefusal, snapshot, expectUnchanged, tmp, root } from "./_helpers.ts";

const TOK = join(root, "cmd", "tokenize.ts");
const HINT = "; fix the file or pass --lossy to replace invalid bytes with U\\+FFFD$";
let work = "";
let tok: Tokenizer;

const bytes = (...parts: (string | number[])[]) =>
  Buffer.concat(parts.map((p) => (typeof p === "string" ? Buffer.from(p) : Buffer.from(p))));
const loose = (b: Uint8Array) => new TextDecoder().decode(b);

function tokenize(args: string[], stdin?: string | Uint8Array) {
  const before = snapshot(work);
  const r = run([TOK, ...args], { cwd: work, stdin, timeoutMs: 20_000 });
  expectUnchanged(before, work);
  return r;
}

/** A parquet file with one string column whose row 2 holds `bad` (written as a placeholder, then patched). */
function badParquet(path: string, bad: number[]): void {
  const mark = "Q".repeat(bad.length);
  parquetWriteFile({
    filename: path,
    codec: "UNCOMPRESSED",
    columnData: [
      { name: "text", data: ["fine", `bad ${mark} here`, "ok"], type: "STRING" },
      { name: "n", data: [1, 2, 3], type: "INT32" },
    ],
  } as any);
  const b = readFileSync(path);
  let patched = 0;
  for (let i = b.indexOf(mark); i >= 0; i = b.indexOf(mark, i + 1), patched++) b.set(bad, i);
  if (patched === 0) throw new Error("placeholder not found in the parquet file");
  writeFileSync(path, b);
}

const BAD = [0xe2, 0x28, 0xa1]; // a 3-byte lead, then "(" where a continuation byte must be: 2 replacements

beforeAll(async () => {
  work = tmp("text-hostile");
  await trainTokenizer(
    readDocs([join(root, "examples", "data", "bilingual.txt")], { lines: true }),
    join(work, "tok"),
    { vocabSize: 400 },
  );
  tok = Tokenizer.fromDir(join(work, "tok"));
  writeFileSync(join(work, "bad.txt"), bytes("good line\n", "ab\u00e9", BAD, " tail\r\n", "last\n"));
  writeFileSync(join(work, "bad.jsonl"), bytes('{"text":"ok"}\n\n{"text":"x', BAD, '"}\n'));
  badParquet(join(work, "bad.parquet"), BAD);
});

describe("refused, naming file:line:byte", () => {
  test("--lines text", () => {
    expectRefusal(
      tokenize(["encode", "--tokenizer", "tok", "--lines", "bad.txt"]),
      new RegExp(`^bunlm: error: bad\\.txt:2:5: invalid UTF-8 \\(bytes e2 28 a1\\)${HINT}`),
    );
  });

  test("a whole-file text document: the line and the byte within it", () => {
    expectRefusal(
      tokenize(["encode", "--tokenizer", "tok", "bad.txt"]),
      new RegExp(`^bunlm: error: bad\\.txt:2:5: invalid UTF-8 \\(bytes e2 28 a1\\)${HINT}`),
    );
  });

  test("JSONL (the line of the file, the byte of the line)", () => {
    expectRefusal(
      tokenize(["encode", "--tokenizer", "tok", "bad.jsonl"]),
      new RegExp(`^bunlm: error: bad\\.jsonl:3:11: invalid UTF-8 \\(bytes e2 28 a1\\)${HINT}`),
    );
  });

  test("encode --chat reads its lines strictly too", () => {
    writeFileSync(join(work, "chat.jsonl"), bytes('{"messages":[{"role":"user","content":"', [0xff], '"}]}\n'));
    expectRefusal(
      tokenize(["encode", "--tokenizer", "tok", "--chat", "chat.jsonl"]),
      new RegExp(`^bunlm: error: chat\\.jsonl:1:40: invalid UTF-8 \\(bytes ff\\)${HINT}`),
    );
  });

  test("stdin is <stdin>", () => {
    expectRefusal(
      tokenize(["encode", "--tokenizer", "tok", "--lines", "-"], bytes("ok\n", "a", [0x80], "b\n")),
      new RegExp(`^bunlm: error: <stdin>:2:2: invalid UTF-8 \\(bytes 80\\)${HINT}`),
    );
  });

  test("parquet: the row, the column and the byte within the value", () => {
    expectRefusal(
      tokenize(["encode", "--tokenizer", "tok", "bad.parquet"]),
      new RegExp(
        `^bunlm: error: bad\\.parquet: row 2: column "text", byte 5: invalid UTF-8 \\(bytes e2 28 a1\\)${HINT}`,
      ),
    );
  });

  test("a sequence cut off by the end of the file", () => {
    writeFileSync(join(work, "cut.txt"), bytes("x\nsmile ", [0xf0, 0x9f, 0x98]));
    expectRefusal(
      tokenize(["encode", "--tokenizer", "tok", "cut.txt"]),
      new RegExp(`^bunlm: error: cut\\.txt:2:7: invalid UTF-8 \\(bytes f0 9f 98\\)${HINT}`),
    );
  });

  test("an encoded surrogate (ED A0 80) at the start of the file", () => {
    writeFileSync(join(work, "sur.txt"), bytes([0xed, 0xa0, 0x80], "x\n"));
    expectRefusal(
      tokenize(["encode", "--tokenizer", "tok", "--lines", "sur.txt"]),
      new RegExp(`^bunlm: error: sur\\.txt:1:1: invalid UTF-8 \\(bytes ed a0 80\\)${HINT}`),
    );
  });

  test("train refuses and writes no tokenizer", () => {
    expectRefusal(
      tokenize(["train", "--vocab-size", "300", "--out", "newtok", "--lines", "bad.txt"]),
      new RegExp(`^bunlm: error: bad\\.txt:2:5: invalid UTF-8 \\(bytes e2 28 a1\\)${HINT}`),
    );
    expect(existsSync(join(work, "newtok"))).toBe(false);
  });

  test("decode refuses a bad byte in its input lines", () => {
    writeFileSync(join(work, "ids.jsonl"), bytes(`{"ids":[1],"note":"`, [0xc3], `"}\n`));
    expectRefusal(
      tokenize(["decode", "--tokenizer", "tok", "ids.jsonl"]),
      new RegExp(`^bunlm: error: ids\\.jsonl:1:20: invalid UTF-8 \\(bytes c3 22\\)${HINT}`),
    );
  });
});

describe("--lossy replaces and counts", () => {
  const summary = (s: string) => JSON.parse(s.trim().split("\n").pop()!);

  test("encode: ids of the replaced text, and the count in the summary", () => {
    const r = tokenize(["encode", "--tokenizer", "tok", "--lines", "--lossy", "bad.txt"]);
    expect(r.code).toBe(0);
    const want = ["good line", loose(bytes("ab\u00e9", BAD, " tail")), "last"].map((t) => ({ ids: tok.encode(t) }));
    expect(
      r.out
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l)),
    ).toEqual(want);
    expect(summary(r.err)).toMatchObject({ event: "summary", documents: 3, replaced_invalid_utf8: 2 });
    const parquet = tokenize(["encode", "--tokenizer", "tok", "--lossy", "bad.parquet"]);
    expect(summary(parquet.err).replaced_invalid_utf8).toBe(2);
    expect(JSON.parse(parquet.out.split("\n")[1]!).ids).toEqual(tok.encode(loose(bytes("bad ", BAD, " here"))));
  });

  test("the count is there only when --lossy is given (0 on clean input)", () => {
    writeFileSync(join(work, "clean.txt"), "clean\n");
    expect(summary(tokenize(["encode", "--tokenizer", "tok", "--lossy", "clean.txt"]).err).replaced_invalid_utf8).toBe(
      0,
    );
    expect("replaced_invalid_utf8" in summary(tokenize(["encode", "--tokenizer", "tok", "clean.txt"]).err)).toBe(false);
  });

  test("train reports it on its summary line", () => {
    const r = tokenize(["train", "--vocab-size", "280", "--out", "lossytok", "--lossy", "bad.txt", "bad.jsonl"]);
    expect(r.code).toBe(0);
    expect(summary(r.out)).toMatchObject({ event: "summary", documents: 3, replaced_invalid_utf8: 4 });
  });

  test("decode too", () => {
    const r = tokenize(["decode", "--tokenizer", "tok", "--lossy", "ids.jsonl"]);
    expect(r.code).toBe(0);
    expect(summary(r.err)).toMatchObject({ documents: 1, replaced_invalid_utf8: 1 });
  });
});

describe("the readers", () => {
  test("invalidUtf8 finds exactly the sequences TextDecoder replaces (fuzzed)", () => {
    // lead bytes of every length, the edge ranges after E0/ED/F0/F4, continuations, bytes never valid
    const alphabet = [
      0x41, 0x80, 0x9f, 0xa0, 0xbf, 0xc0, 0xc2, 0xdf, 0xe0, 0xe2, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff, 0x8f, 0x90,
    ];
    const rng = new Rng(11);
    for (let k = 0; k < 3000; k++) {
      const b = Uint8Array.from({ length: 1 + rng.int(12) }, () => alphabet[rng.int(alphabet.length)]!);
      let n = 0;
      for (let bad = invalidUtf8(b); bad; bad = invalidUtf8(b, bad.at + bad.len)) n++;
      const replaced = [...loose(b)].filter((c) => c === "\ufffd").length; // the alphabet cannot spell a real U+FFFD (EF BF BD)
      if (n !== replaced)
        throw new Error(`bytes ${Buffer.from(b).toString("hex")}: found ${n}, TextDecoder replaced ${replaced}`);
    }
  });

  test("lines(): the line number and byte survive the 1 MiB read chunks", async () => {
    const path = join(work, "big.txt");
    const line = "x".repeat(99) + "\n"; // 100 bytes a line; line 10486 spans the chunk boundary at 1 MiB
    writeFileSync(path, bytes(line.repeat(10485), "y".repeat(80), [0xff], "z\n"));
    let err = "";
    try {
      for await (const _ of lines(path)) {
      }
    } catch (e) {
      err = (e as Error).message;
    }
    expect(err).toBe(
      `${path}:10486:81: invalid UTF-8 (bytes ff); fix the file or pass --lossy to replace invalid bytes with U+FFFD`,
    );
    const lossy = { replaced: 0 };
    let last = "";
    for await (const l of lines(path, { lossy })) last = l;
    expect(last).toBe("y".repeat(80) + "\ufffdz");
    expect(lossy.replaced).toBe(1);
  });

  test("readRows and readDocs take the lossy counter (what pack passes on)", async () => {
    const lossy = { replaced: 0 };
    const rows = [];
    for await (const r of readRows([join(work, "bad.jsonl"), join(work, "bad.parquet")], { lossy }))
      rows.push(r.row.text);
    expect(rows).toEqual(["ok", loose(bytes("x", BAD)), "fine", loose(bytes("bad ", BAD, " here")), "ok"]);
    expect(lossy.replaced).toBe(4);
    await expect(
      (async () => {
        for await (const _ of readRows([join(work, "bad.parquet")])) {
        }
      })(),
    ).rejects.toThrow(`${join(work, "bad.parquet")}: row 2: column "text", byte 5: invalid UTF-8 (bytes e2 28 a1)`);
    const docs = { replaced: 0 };
    for await (const _ of readDocs([join(work, "bad.txt")], { lossy: docs })) {
    }
    expect(docs.replaced).toBe(2);
  });
});
