// The tokenize command end to end: every input format, the records on stdout, the summaries, and
// one clear error (file, line, what was expected) with a non-zero exit for bad input.
import { beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parquetWriteFile } from "hyparquet-writer";
import { Tokenizer } from "../../lib/tokenizer/tokenizer.ts";

const root = join(import.meta.dir, "..", "..");
const corpus = join(root, "examples", "data", "bilingual.txt");
const tmp = mkdtempSync(join(tmpdir(), "bunlm-tokcli-"));
const tokDir = join(tmp, "tok");

function run(args: string[], stdin?: string) {
  const p = Bun.spawnSync([process.execPath, join(root, "cmd", "tokenize.ts"), ...args], {
    cwd: tmp,
    stdin: stdin === undefined ? "ignore" : Buffer.from(stdin),
  });
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
}

const jsonLines = (s: string) =>
  s
    .trim()
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l));

beforeAll(() => {
  const r = run(["train", "--vocab-size", "400", "--out", tokDir, "--lines", "--special", "<|tool|>", corpus]);
  if (r.code !== 0) throw new Error(r.err);
});

describe("tokenize train", () => {
  test("writes tokenizer.json and tokenizer_config.json and ends with a summary event", () => {
    const r = run(["train", "--vocab-size", "320", "--out", join(tmp, "t2"), "--lines", corpus]);
    expect(r.code).toBe(0);
    const ev = jsonLines(r.out);
    const s = ev[ev.length - 1];
    expect(s).toMatchObject({ event: "summary", documents: 14, vocab_size: 320 });
    expect(s.bytes).toBe(
      Buffer.byteLength((require("node:fs").readFileSync(corpus, "utf8") as string).split("\n").join("")),
    );
    expect(s.bytes_per_token).toBeCloseTo(s.bytes / s.tokens, 3);
    expect(existsSync(join(tmp, "t2", "tokenizer.json"))).toBe(true);
    const cfg = JSON.parse(require("node:fs").readFileSync(join(tmp, "t2", "tokenizer_config.json"), "utf8"));
    expect(cfg).toMatchObject({
      eos_token: "<|endoftext|>",
      pad_token: "<|pad|>",
      tokenizer_class: "PreTrainedTokenizerFast",
    });
    expect(cfg.chat_template).toContain("<|im_start|>");
  });

  test("--special adds a token that encodes as one id", () => {
    const tok = Tokenizer.fromDir(tokDir);
    expect(tok.encode("<|tool|>")).toEqual([tok.specialId("<|tool|>")]);
  });

  test("reads JSONL, parquet (snappy, several row groups) and stdin", () => {
    const texts = ["first document 第一", "second one 第二", "third: 三"];
    writeFileSync(join(tmp, "d.jsonl"), texts.map((t, i) => JSON.stringify({ body: t, n: i })).join("\n") + "\n");
    parquetWriteFile({
      filename: join(tmp, "d.parquet"),
      columnData: [
        { name: "body", data: texts, type: "STRING" },
        { name: "n", data: [0, 1, 2], type: "INT32" },
      ],
      rowGroupSize: 2,
    } as any);
    const a = run(["encode", "--tokenizer", tokDir, "--field", "body", join(tmp, "d.jsonl")]);
    const b = run(["encode", "--tokenizer", tokDir, "--field", "body", join(tmp, "d.parquet")]);
    const c = run(["encode", "--tokenizer", tokDir, "--lines", "-"], texts.join("\n") + "\n");
    for (const r of [a, b, c]) expect(r.code).toBe(0);
    const tok = Tokenizer.fromDir(tokDir);
    const want = texts.map((t) => tok.encode(t));
    expect(jsonLines(a.out)).toEqual(want.map((ids, n) => ({ ids, n })));
    expect(jsonLines(b.out).map((r) => r.ids)).toEqual(want);
    expect(jsonLines(c.out).map((r) => r.ids)).toEqual(want);
    // summary on stderr, stdout stays pure data
    expect(JSON.parse(a.err.trim().split("\n").pop()!)).toMatchObject({ event: "summary", documents: 3 });
  });
});

describe("tokenize encode / decode", () => {
  test("--add-eos, then decode restores the text", () => {
    const text = "Hello, 世界! 🤖 \t spaces";
    const e = run(
      ["encode", "--tokenizer", tokDir, "--add-eos", "--format", "jsonl", "-"],
      JSON.stringify({ text }) + "\n",
    );
    expect(e.code).toBe(0);
    const ids = jsonLines(e.out)[0].ids;
    const tok = Tokenizer.fromDir(tokDir);
    expect(ids[ids.length - 1]).toBe(tok.specialId("<|endoftext|>"));
    const d = run(["decode", "--tokenizer", tokDir], e.out);
    expect(d.code).toBe(0);
    expect(jsonLines(d.out)).toEqual([{ text: text + "<|endoftext|>" }]);
    const s = run(["decode", "--tokenizer", tokDir, "--skip-special"], e.out);
    expect(jsonLines(s.out)).toEqual([{ text }]);
  });

  test("an input file named like a subcommand is still an input", () => {
    writeFileSync(join(tmp, "train"), "river\n");
    const r = run(["encode", "--tokenizer", tokDir, "--lines", "train"]); // relative to the cwd, tmp
    expect(r.code).toBe(0);
    expect(jsonLines(r.out)).toEqual([{ ids: Tokenizer.fromDir(tokDir).encode("river") }]);
  });

  test("encode with worker threads gives the same records in the same order", () => {
    const many = Array.from({ length: 3000 }, (_, i) =>
      JSON.stringify({ text: `row ${i}: 河水 ${"word ".repeat(i % 7)}`, i }),
    ).join("\n");
    writeFileSync(join(tmp, "many.jsonl"), many + "\n");
    const one = run(["encode", "--tokenizer", tokDir, "--threads", "0", join(tmp, "many.jsonl")]);
    const two = run(["encode", "--tokenizer", tokDir, "--threads", "2", join(tmp, "many.jsonl")]);
    expect(two.code).toBe(0);
    expect(two.out).toBe(one.out);
    expect(jsonLines(two.out)).toHaveLength(3000);
  });

  test("--chat: ids and a mask on the assistant's reply and its end-of-turn token", () => {
    const row = {
      messages: [
        { role: "user", content: "2+2?" },
        { role: "assistant", content: "4" },
      ],
      id: "q1",
    };
    const r = run(["encode", "--tokenizer", tokDir, "--chat", "-"], JSON.stringify(row) + "\n");
    expect(r.code).toBe(0);
    const { ids, assistant_mask, id } = jsonLines(r.out)[0];
    expect(id).toBe("q1");
    const tok = Tokenizer.fromDir(tokDir);
    expect(tok.decode(ids)).toBe("<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n");
    const trained = ids.filter((_: number, i: number) => assistant_mask[i] === 1);
    expect(tok.decode(trained)).toBe("4<|im_end|>");
  });
});

describe("stdin (-): JSONL when its first non-blank byte is {, else text", () => {
  const rows = [
    { text: "river 河水", id: 7 },
    { text: "mill", tags: ["a"] },
  ];

  test("encode -: JSONL rows are encoded as a .jsonl file's are, their other fields kept", () => {
    writeFileSync(join(tmp, "rows.jsonl"), rows.map((r) => JSON.stringify(r)).join("\n") + "\n");
    const fromFile = run(["encode", "--tokenizer", tokDir, join(tmp, "rows.jsonl")]);
    const fromStdin = run(
      ["encode", "--tokenizer", tokDir, "-"],
      "\n  " + rows.map((r) => JSON.stringify(r)).join("\n"),
    );
    expect(fromStdin.code).toBe(0);
    expect(fromStdin.out).toBe(fromFile.out);
    const tok = Tokenizer.fromDir(tokDir);
    expect(jsonLines(fromStdin.out)).toEqual([
      { ids: tok.encode("river 河水"), id: 7 },
      { ids: tok.encode("mill"), tags: ["a"] },
    ]);
    expect(JSON.parse(fromStdin.err.trim())).toMatchObject({ event: "summary", documents: 2 });
  });

  test("encode -: text is one document (per line with --lines), even when a line is JSON", () => {
    const text = 'say {"a":1}\nto me\n';
    const whole = run(["encode", "--tokenizer", tokDir, "-"], text);
    const perLine = run(["encode", "--tokenizer", tokDir, "--lines", "-"], text);
    const tok = Tokenizer.fromDir(tokDir);
    expect(jsonLines(whole.out)).toEqual([{ ids: tok.encode(text) }]);
    expect(jsonLines(perLine.out)).toEqual([{ ids: tok.encode('say {"a":1}') }, { ids: tok.encode("to me") }]);
  });

  test("encode -: text that starts with { but is not JSONL is refused, saying how to read it as text", () => {
    const code = "{ int x; }\nreturn;\n";
    const r = run(["encode", "--tokenizer", tokDir, "-"], code);
    expect(r.code).toBe(1);
    expect(r.out).toBe("");
    expect(r.err.trim()).toMatch(
      /^bunlm: error: <stdin>:1: not valid JSON \(.*\); stdin starts with "\{", so it is read as JSONL: give --format txt to read it as text$/,
    );
    const asText = run(["encode", "--tokenizer", tokDir, "--format", "txt", "-"], code);
    expect(asText.code).toBe(0);
    expect(jsonLines(asText.out)).toEqual([{ ids: Tokenizer.fromDir(tokDir).encode(code) }]);
  });

  test("- given twice is refused before anything is written", () => {
    for (const args of [
      ["encode", "--tokenizer", tokDir, "-", "-"],
      ["encode", "--tokenizer", tokDir, "--chat", "-", "-"],
      ["decode", "--tokenizer", tokDir, "-", "-"],
      ["train", "--vocab-size", "300", "--out", join(tmp, "twice"), "-", "-"],
    ]) {
      const r = run(args, '{"text":"a","ids":[1],"messages":[{"role":"user","content":"a"}]}\n');
      expect(r.code).toBe(1);
      expect(r.out).toBe("");
      expect(r.err.trim()).toBe("bunlm: error: - (stdin) is given twice; it can be read once");
    }
    expect(existsSync(join(tmp, "twice"))).toBe(false);
  });

  test("encode - | decode -: the round trip through two pipes", () => {
    const e = run(["encode", "--tokenizer", tokDir, "-"], rows.map((r) => JSON.stringify(r)).join("\n"));
    const d = run(["decode", "--tokenizer", tokDir, "-"], e.out);
    expect(d.code).toBe(0);
    expect(jsonLines(d.out)).toEqual([{ text: "river 河水" }, { text: "mill" }]);
    const notIds = run(["decode", "--tokenizer", tokDir, "-"], "river\n");
    expect(notIds.err.trim()).toMatch(/^bunlm: error: <stdin>:1: not valid JSON/);
  });

  test("parquet cannot come from stdin", () => {
    const r = run(["encode", "--tokenizer", tokDir, "--format", "parquet", "-"], "PAR1");
    expect(r.err.trim()).toBe("bunlm: error: parquet cannot be read from stdin; give the file's path");
  });
});

describe("bad input: one line naming file and line, exit 1", () => {
  const cases: [string, () => { code: number | null; err: string }, RegExp][] = [
    [
      "missing file",
      () => run(["train", "--vocab-size", "400", "--out", join(tmp, "x"), join(tmp, "nope.txt")]),
      /nope\.txt: no such file/,
    ],
    [
      "a JSONL line that is not JSON",
      () => {
        writeFileSync(join(tmp, "bad.jsonl"), '{"text":"ok"}\n{"text": oops}\n');
        return run(["encode", "--tokenizer", tokDir, join(tmp, "bad.jsonl")]);
      },
      /bad\.jsonl:2: not valid JSON/,
    ],
    [
      "a row without the field",
      () => {
        writeFileSync(join(tmp, "nofield.jsonl"), '{"text":"ok"}\n{"body":"no text here"}\n');
        return run(["train", "--vocab-size", "400", "--out", join(tmp, "y"), join(tmp, "nofield.jsonl")]);
      },
      /nofield\.jsonl:2: no field "text" \(fields: body\)/,
    ],
    [
      "an empty corpus",
      () => {
        writeFileSync(join(tmp, "empty.txt"), "");
        return run(["train", "--vocab-size", "400", "--out", join(tmp, "z"), join(tmp, "empty.txt")]);
      },
      /the inputs hold no text/,
    ],
    [
      "a vocab size smaller than 256 + specials",
      () => run(["train", "--vocab-size", "260", "--out", join(tmp, "w"), corpus]),
      /option --vocab-size: 260 is too small: .* at least 264/,
    ],
    [
      "a tokenizer directory that does not exist",
      () => run(["encode", "--tokenizer", join(tmp, "nodir"), corpus]),
      /nodir\/tokenizer\.json: no tokenizer here/,
    ],
    [
      "an unknown chat role",
      () => run(["encode", "--tokenizer", tokDir, "--chat", "-"], '{"messages":[{"role":"robot","content":"x"}]}\n'),
      /<stdin>:1: messages\[0\] has role "robot"/,
    ],
    [
      "ids outside the vocabulary",
      () => run(["decode", "--tokenizer", tokDir], '{"ids":[1,2,99999]}\n'),
      /<stdin>:1: token id 99999 is outside the vocabulary/,
    ],
    [
      "a parquet column that is missing",
      () => run(["encode", "--tokenizer", tokDir, "--field", "nope", join(tmp, "d.parquet")]),
      /d\.parquet: no column "nope" \(columns: body, n\)/,
    ],
  ];
  for (const [name, go, re] of cases) {
    test(name, () => {
      const r = go();
      expect(r.code).toBe(1);
      const lines = r.err.trim().split("\n");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^bunlm: error: /);
      expect(lines[0]).toMatch(re);
    });
  }

  test("a failed train leaves no tokenizer behind", () => {
    expect(existsSync(join(tmp, "y", "tokenizer.json"))).toBe(false);
    expect(existsSync(join(tmp, "z", "tokenizer.json"))).toBe(false);
  });
});
