// pack end to end on hand-written inputs, with a byte-level tokenizer (ids are UTF-8 bytes) so every
// expected id and mask is written out here; shards are read back with our reader and, independently,
// by the safetensors format rules.
import { beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { byteTokenizer, bytes, EOS, PAD, IM_START, IM_END } from "../data/pack_test_tokenizer.ts";
import { readKey, readManifest, readSide } from "../../lib/data/shards.ts";
import { bestFitDecreasing } from "../../lib/data/pack_sft.ts";
import { fileSum } from "../../lib/io/files.ts";

const root = join(import.meta.dir, "..", "..");
const tmp = mkdtempSync(join(tmpdir(), "bunlm-pack-"));
let tok: string;

beforeAll(async () => {
  tok = await byteTokenizer();
});

function pack(args: string[], stdin?: string) {
  const p = Bun.spawnSync([process.execPath, join(root, "cmd", "pack.ts"), ...args], {
    cwd: tmp,
    stdin: stdin === undefined ? "ignore" : Buffer.from(stdin),
  });
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
}

function file(name: string, text: string): string {
  const p = join(tmp, name);
  writeFileSync(p, text);
  return p;
}

const jsonl = (rows: unknown[]) => rows.map((r) => JSON.stringify(r)).join("\n") + "\n";
const rowsOf = (t: { shape: number[]; data: ArrayLike<number> }) => {
  const w = t.shape.slice(1).reduce((a, b) => a * b, 1);
  return Array.from({ length: t.shape[0]! }, (_, r) => Array.from(t.data).slice(r * w, (r + 1) * w));
};
const sorted = (rows: number[][]) => [...rows].sort((a, b) => a.join(",").localeCompare(b.join(",")));

/** The safetensors rules, checked from the raw bytes without our reader. */
function checkSafetensorsBytes(path: string) {
  const b = readFileSync(path);
  const n = Number(b.readBigUInt64LE(0));
  const header = JSON.parse(b.subarray(8, 8 + n).toString("utf8"));
  const size: Record<string, number> = { I32: 4, U8: 1, F32: 4 };
  let expect0 = 0;
  const entries = Object.entries<any>(header)
    .filter(([k]) => k !== "__metadata__")
    .sort((x, y) => x[1].data_offsets[0] - y[1].data_offsets[0]);
  for (const [, t] of entries) {
    expect(t.data_offsets[0]).toBe(expect0);
    expect(t.data_offsets[1] - t.data_offsets[0]).toBe(
      t.shape.reduce((a: number, c: number) => a * c, 1) * size[t.dtype]!,
    );
    expect0 = t.data_offsets[1];
  }
  expect(8 + n + expect0).toBe(b.length);
  expect((8 + n) % 8).toBe(0);
}

describe("pack seq", () => {
  test("documents joined with <|endoftext|>, rows of L+1 overlapping by one, position_ids restart", () => {
    const inp = file("docs.jsonl", jsonl([{ text: "a" }, { text: "bc" }, { text: "d" }]));
    const r = pack(["seq", "--tokenizer", tok, "--seq-len", "3", "--out", join(tmp, "seq"), "--doc-mask", inp]);
    expect(r.code).toBe(0);
    // stream: a EOS b c EOS d EOS → rows [a EOS b c], [c EOS d EOS]
    const a = 97,
      b = 98,
      c = 99,
      d = 100;
    const inputs = rowsOf(readKey(join(tmp, "seq"), "train", "input_ids") as any);
    const targets = rowsOf(readKey(join(tmp, "seq"), "train", "target_ids") as any);
    const pos = rowsOf(readKey(join(tmp, "seq"), "train", "position_ids") as any);
    const got = sorted(inputs.map((x, i) => [...x, ...targets[i]!, ...pos[i]!]));
    expect(got).toEqual(
      sorted([
        [a, EOS, b, EOS, b, c, 0, 1, 0],
        [c, EOS, d, EOS, d, EOS, 0, 1, 0],
      ]),
    );
    expect(JSON.parse(r.out)).toMatchObject({
      event: "summary",
      type: "seq",
      rows: { train: 2, val: 0 },
      tail_tokens: 0,
      padding_fraction: 0,
    });
    for (const f of readdirSync(join(tmp, "seq")).filter((f) => f.endsWith(".safetensors")))
      checkSafetensorsBytes(join(tmp, "seq", f));
    const m = readManifest(join(tmp, "seq"));
    expect(m).toMatchObject({ type: "seq", seq_len: 3, doc_mask: true, seed: 0, rows: { train: 2, val: 0 } });
    expect(m.keys).toEqual({
      input_ids: { dtype: "I32", shape: ["rows", 3] },
      target_ids: { dtype: "I32", shape: ["rows", 3] },
      position_ids: { dtype: "I32", shape: ["rows", 3] },
    });
    expect(m.tokenizer).toMatchObject({ eos_id: EOS, pad_id: PAD, vocab_size: 264 });
  });

  test("pre-tokenized ids from `tokenize encode`, a validation split, the same seed gives the same shards", () => {
    const ids = Array.from({ length: 40 }, (_, i) => ({ ids: [i % 200, (i * 7) % 200] }));
    const inp = file("ids.jsonl", jsonl(ids));
    const go = (out: string, seed: string) =>
      pack([
        "seq",
        "--tokenizer",
        tok,
        "--seq-len",
        "4",
        "--out",
        join(tmp, out),
        "--seed",
        seed,
        "--val-fraction",
        "0.25",
        "--shard-rows",
        "7",
        inp,
      ]);
    const r1 = go("s1", "5"),
      r2 = go("s2", "5"),
      r3 = go("s3", "6");
    for (const r of [r1, r2, r3]) expect(r.code).toBe(0);
    // 40 docs × 3 tokens = 120 tokens → (120 - 1) / 4 = 29 rows, 3 tail tokens
    expect(JSON.parse(r1.out)).toMatchObject({ rows: { train: 22, val: 7 }, tail_tokens: 3 });
    const m = readManifest(join(tmp, "s1"));
    expect(m.shards.map((s) => s.rows)).toEqual([7, 7, 7, 1, 7]);
    const a = readFileSync(join(tmp, "s1", "train-00000.safetensors")),
      b = readFileSync(join(tmp, "s2", "train-00000.safetensors"));
    expect(a.equals(b)).toBe(true);
    expect(a.equals(readFileSync(join(tmp, "s3", "train-00000.safetensors")))).toBe(false);
    // every row is in exactly one split
    const all = [
      ...rowsOf(readKey(join(tmp, "s1"), "train", "input_ids") as any),
      ...rowsOf(readKey(join(tmp, "s1"), "val", "input_ids") as any),
    ];
    expect(all).toHaveLength(29);
    const stream = ids.flatMap((x) => [...x.ids, EOS]);
    const want = Array.from({ length: 29 }, (_, k) => stream.slice(4 * k, 4 * k + 4));
    expect(sorted(all)).toEqual(sorted(want));
  });
});

describe("pack from stdin (-)", () => {
  const seq = (out: string, input: string, stdin?: string, more: string[] = []) =>
    pack(["seq", "--tokenizer", tok, "--seq-len", "3", "--out", join(tmp, out), ...more, input], stdin);
  const shard = (out: string) => readFileSync(join(tmp, out, "train-00000.safetensors"));

  test("JSONL rows, and `tokenize encode`'s ids, pack as they do from a file", () => {
    const rows = jsonl([{ text: "ab" }, { text: "cde" }]);
    const ids = jsonl([{ ids: [97, 98] }, { ids: [99, 100, 101] }]);
    for (const [name, body] of [
      ["rows", rows],
      ["ids", ids],
    ] as const) {
      const f = seq(`${name}-file`, file(`${name}.jsonl`, body));
      const s = seq(`${name}-stdin`, "-", `\n${body}`);
      expect(s.code).toBe(0);
      expect(JSON.parse(s.out)).toMatchObject({ rows: { train: 2, val: 0 }, inputs: 2, tail_tokens: 0 });
      expect(shard(`${name}-stdin`).equals(shard(`${name}-file`))).toBe(true);
      expect(JSON.parse(f.out).rows).toEqual({ train: 2, val: 0 });
    }
    // a b EOS c d e EOS: two rows of 3 overlapping by one
    expect(readKey(join(tmp, "ids-stdin"), "train", "input_ids").data.length).toBe(6);
  });

  test("text on stdin is text; text that starts with { needs --format txt", () => {
    const t = seq("text-stdin", "-", "abcdefg", ["--lines"]);
    expect(JSON.parse(t.out)).toMatchObject({ inputs: 1, rows: { train: 2, val: 0 } });
    const braces = seq("brace-stdin", "-", "{abc}\n");
    expect(braces.code).toBe(1);
    expect(braces.err.trim()).toMatch(
      /^bunlm: error: <stdin>:1: not valid JSON \(.*\); stdin starts with "\{", so it is read as JSONL: give --format txt to read it as text$/,
    );
    expect(existsSync(join(tmp, "brace-stdin"))).toBe(false);
    expect(seq("brace-txt", "-", "{abc}\n", ["--format", "txt"]).code).toBe(0);
  });

  test("refused: - twice, and parquet from stdin", () => {
    expect(seq("twice", "-", jsonl([{ text: "abcdef" }]), ["-"]).err.trim()).toBe(
      "bunlm: error: - (stdin) is given twice; it can be read once",
    );
    expect(seq("pq", "-", "PAR1", ["--format", "parquet"]).err.trim()).toBe(
      "bunlm: error: parquet cannot be read from stdin; give the file's path",
    );
    expect(existsSync(join(tmp, "twice"))).toBe(false);
    expect(existsSync(join(tmp, "pq"))).toBe(false);
  });
});

describe("pack sft", () => {
  const conv = {
    messages: [
      { role: "user", content: "hi" },
      { role: "assistant", content: "yo" },
    ],
  };
  // <|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nyo<|im_end|>\n
  const ids = [IM_START, ...bytes("user\nhi"), IM_END, 10, IM_START, ...bytes("assistant\nyo"), IM_END, 10];
  const trained = new Set([21, 22, 23]); // y, o, <|im_end|>

  test("one conversation: loss_mask exactly on the reply and its <|im_end|>", () => {
    expect(ids).toHaveLength(25);
    const r = pack([
      "sft",
      "--tokenizer",
      tok,
      "--seq-len",
      "24",
      "--out",
      join(tmp, "sft1"),
      file("c1.jsonl", jsonl([conv])),
    ]);
    expect(r.code).toBe(0);
    const d = join(tmp, "sft1");
    expect(Array.from(readKey(d, "train", "input_ids").data as Int32Array)).toEqual(ids.slice(0, 24));
    expect(Array.from(readKey(d, "train", "target_ids").data as Int32Array)).toEqual(ids.slice(1));
    expect(Array.from(readKey(d, "train", "loss_mask").data as Uint8Array)).toEqual(
      ids.slice(1).map((_, t) => (trained.has(t + 1) ? 1 : 0)),
    );
    expect(Array.from(readKey(d, "train", "position_ids").data as Int32Array)).toEqual(
      ids.slice(0, 24).map((_, i) => i),
    );
  });

  test("two conversations in one row: positions restart, the seam and the padding are not trained", () => {
    const r = pack([
      "sft",
      "--tokenizer",
      tok,
      "--seq-len",
      "60",
      "--out",
      join(tmp, "sft2"),
      file("c2.jsonl", jsonl([conv, conv])),
    ]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({ rows: { train: 1 }, padding_fraction: +(10 / 60).toFixed(4) });
    const d = join(tmp, "sft2");
    const inp = Array.from(readKey(d, "train", "input_ids").data as Int32Array);
    const tgt = Array.from(readKey(d, "train", "target_ids").data as Int32Array);
    const loss = Array.from(readKey(d, "train", "loss_mask").data as Uint8Array);
    const pos = Array.from(readKey(d, "train", "position_ids").data as Int32Array);
    expect(inp).toEqual([...ids, ...ids, ...new Array(10).fill(PAD)]);
    expect(tgt).toEqual([...ids.slice(1), ...ids, ...new Array(11).fill(PAD)]);
    expect(pos).toEqual([...ids.map((_, i) => i), ...ids.map((_, i) => i), ...new Array(10).fill(0)]);
    const want = new Array(60).fill(0);
    for (const t of trained) {
      want[t - 1] = 1;
      want[25 + t - 1] = 1;
    }
    expect(loss).toEqual(want);
    expect(loss[24]).toBe(0); // the seam: target of conversation 1's last token is conversation 2's first
  });

  test("best-fit-decreasing", () => {
    // capacity 10: 7 and 3 fill one bin; 6 and 4 another; 5 and 5 a third
    expect(bestFitDecreasing([5, 7, 3, 6, 4, 5], 10).map((b) => b.sort())).toEqual([
      [1, 2],
      [3, 4],
      [0, 5],
    ]);
  });

  test("conversations without an assistant turn train nothing: left out and counted", () => {
    const noReply = {
      messages: [
        { role: "system", content: "s" },
        { role: "user", content: "hi" },
      ],
    };
    const r = pack([
      "sft",
      "--tokenizer",
      tok,
      "--seq-len",
      "24",
      "--out",
      join(tmp, "sft5"),
      file("c5.jsonl", jsonl([noReply, conv, { messages: [{ role: "user", content: "q" }] }])),
    ]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({ inputs: 3, rows: { train: 1 } });
    expect(readManifest(join(tmp, "sft5")).stats).toMatchObject({ no_assistant: 2, dropped: 0 });
    const out = join(tmp, "sft6");
    const none = pack([
      "sft",
      "--tokenizer",
      tok,
      "--seq-len",
      "24",
      "--out",
      out,
      file("c6.jsonl", jsonl([noReply, noReply])),
    ]);
    expect(none.code).toBe(1);
    expect(none.err.trim().split("\n")).toHaveLength(1);
    expect(none.err).toMatch(
      /c6\.jsonl: none of the 2 conversations has an assistant turn, and sft trains only on the assistant's replies/,
    );
    expect(existsSync(out)).toBe(false);
  });

  test("over-long conversations: truncated or dropped, and counted", () => {
    const inp = file(
      "long.jsonl",
      jsonl([
        conv,
        {
          messages: [
            { role: "user", content: "x".repeat(50) },
            { role: "assistant", content: "ok" },
          ],
        },
      ]),
    );
    const t = pack(["sft", "--tokenizer", tok, "--seq-len", "30", "--out", join(tmp, "sft3"), inp]);
    const d = pack([
      "sft",
      "--tokenizer",
      tok,
      "--seq-len",
      "30",
      "--out",
      join(tmp, "sft4"),
      "--overlong",
      "drop",
      inp,
    ]);
    expect(JSON.parse(t.out)).toMatchObject({ truncated_rows: 1, dropped_rows: 0, rows: { train: 2 } });
    expect(JSON.parse(d.out)).toMatchObject({ truncated_rows: 0, dropped_rows: 1, rows: { train: 1 } });
  });
});

describe("pack dpo", () => {
  test("strings: prompt + response + <|endoftext|>, masks 0 on prompt and padding, real <|pad|>", () => {
    const r = pack([
      "dpo",
      "--tokenizer",
      tok,
      "--seq-len",
      "5",
      "--out",
      join(tmp, "dpo"),
      file("p.jsonl", jsonl([{ prompt: "p", chosen: "c", rejected: "rr" }])),
    ]);
    expect(r.code).toBe(0);
    const d = join(tmp, "dpo");
    expect(Array.from(readKey(d, "train", "chosen").data as Int32Array)).toEqual([112, 99, EOS, PAD, PAD]);
    expect(Array.from(readKey(d, "train", "chosen_mask").data as Uint8Array)).toEqual([0, 1, 1, 0, 0]);
    expect(Array.from(readKey(d, "train", "rejected").data as Int32Array)).toEqual([112, 114, 114, EOS, PAD]);
    expect(Array.from(readKey(d, "train", "rejected_mask").data as Uint8Array)).toEqual([0, 1, 1, 1, 0]);
  });

  test("message lists go through the chat template", () => {
    const row = {
      prompt: [{ role: "user", content: "q" }],
      chosen: [{ role: "assistant", content: "y" }],
      rejected: [{ role: "assistant", content: "n" }],
    };
    const r = pack([
      "dpo",
      "--tokenizer",
      tok,
      "--seq-len",
      "24",
      "--out",
      join(tmp, "dpo2"),
      file("p2.jsonl", jsonl([row])),
    ]);
    expect(r.code).toBe(0);
    const d = join(tmp, "dpo2");
    const prompt = [IM_START, ...bytes("user\nq"), IM_END, 10, IM_START, ...bytes("assistant\n")];
    const chosen = [...prompt, 121, IM_END, 10];
    expect(Array.from(readKey(d, "train", "chosen").data as Int32Array)).toEqual([
      ...chosen,
      ...new Array(24 - chosen.length).fill(PAD),
    ]);
    const mask = Array.from(readKey(d, "train", "chosen_mask").data as Uint8Array);
    expect(mask.slice(prompt.length, prompt.length + 3)).toEqual([1, 1, 0]);
    expect(mask.reduce((a, b) => a + b, 0)).toBe(2);
  });
});

describe("pack grpo", () => {
  test("left-padded prompts, prompt_mask, other fields in a row-aligned side file", () => {
    const rows = [
      { prompt: "ab", answer: "3" },
      { prompt: "c", answer: "4", id: 2 },
    ];
    const r = pack([
      "grpo",
      "--tokenizer",
      tok,
      "--seq-len",
      "4",
      "--out",
      join(tmp, "grpo"),
      "--seed",
      "1",
      file("g.jsonl", jsonl(rows)),
    ]);
    expect(r.code).toBe(0);
    const d = join(tmp, "grpo");
    const prompts = rowsOf(readKey(d, "train", "prompts") as any);
    const masks = rowsOf(readKey(d, "train", "prompt_mask") as any);
    const side = readSide(d, "train") as any[];
    const byAnswer = Object.fromEntries(side.map((s, i) => [s.answer, { p: prompts[i], m: masks[i], s }]));
    expect(byAnswer["3"]).toEqual({ p: [PAD, PAD, 97, 98], m: [0, 0, 1, 1], s: { answer: "3" } });
    expect(byAnswer["4"]).toEqual({ p: [PAD, PAD, PAD, 99], m: [0, 0, 0, 1], s: { answer: "4", id: 2 } });
  });

  test("the manifest records each shard's and side file's size and CRC-32", () => {
    const d = join(tmp, "grpo");
    const shards = readManifest(d).shards;
    expect(shards.length).toBeGreaterThan(0);
    for (const s of shards) {
      expect(fileSum(join(d, s.file))).toEqual({ bytes: s.bytes!, crc32: s.crc32! });
      expect(fileSum(join(d, s.side!))).toEqual({ bytes: s.side_bytes!, crc32: s.side_crc32! });
    }
  });

  test("offline: responses, masks and rewards", () => {
    const rows = [{ prompt: "q", responses: ["x", "yz"], rewards: [1, 0] }];
    const r = pack([
      "grpo",
      "--tokenizer",
      tok,
      "--seq-len",
      "2",
      "--response-len",
      "3",
      "--out",
      join(tmp, "grpo2"),
      file("g2.jsonl", jsonl(rows)),
    ]);
    expect(r.code).toBe(0);
    const d = join(tmp, "grpo2");
    expect(readManifest(d)).toMatchObject({ group_size: 2, response_len: 3 });
    expect(Array.from(readKey(d, "train", "responses").data as Int32Array)).toEqual([120, EOS, PAD, 121, 122, EOS]);
    expect(Array.from(readKey(d, "train", "masks").data as Uint8Array)).toEqual([1, 1, 0, 1, 1, 1]);
    expect(Array.from(readKey(d, "train", "rewards").data as Float32Array)).toEqual([1, 0]);
  });
});

describe("bad input: one line with file and line, exit 1, nothing left behind", () => {
  const cases: [string, () => string[], RegExp][] = [
    [
      "an unknown role",
      () => [
        "sft",
        "--seq-len",
        "16",
        file(
          "r.jsonl",
          jsonl([{ messages: [{ role: "user", content: "a" }] }, { messages: [{ role: "wizard", content: "b" }] }]),
        ),
      ],
      /r\.jsonl:2: messages\[0\] has role "wizard"/,
    ],
    [
      "a DPO row missing rejected",
      () => ["dpo", "--seq-len", "16", file("d.jsonl", jsonl([{ prompt: "a", chosen: "b" }]))],
      /d\.jsonl:1: no field "rejected"/,
    ],
    [
      "L < 2",
      () => ["seq", "--seq-len", "1", file("s.jsonl", jsonl([{ text: "abc" }]))],
      /--seq-len: must be at least 2/,
    ],
    [
      "a JSONL line that is not JSON",
      () => ["seq", "--seq-len", "4", file("bad.jsonl", '{"text":"a"}\nnope\n')],
      /bad\.jsonl:2: not valid JSON/,
    ],
    [
      "ids from another tokenizer",
      () => ["seq", "--seq-len", "4", file("big.jsonl", jsonl([{ ids: [1, 99999] }]))],
      /big\.jsonl:1: token id 99999 is outside the tokenizer's vocabulary/,
    ],
  ];
  for (const [name, args, re] of cases) {
    test(name, () => {
      const [type, ...rest] = args();
      const out = join(tmp, `bad-${name.replace(/\W+/g, "-")}`);
      const r = pack([type!, "--tokenizer", tok, "--out", out, ...rest]);
      expect(r.code).toBe(1);
      const lines = r.err.trim().split("\n");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(re);
      expect(existsSync(out)).toBe(false);
      expect(readdirSync(tmp).filter((f) => f.startsWith(`bad-${name.replace(/\W+/g, "-")}`))).toEqual([]);
    });
  }

  test("a tokenizer directory that does not exist", () => {
    const r = pack([
      "seq",
      "--tokenizer",
      join(tmp, "no-such-tok"),
      "--seq-len",
      "4",
      "--out",
      join(tmp, "x"),
      file("ok.jsonl", jsonl([{ text: "abc" }])),
    ]);
    expect(r.code).toBe(1);
    expect(r.err.trim()).toMatch(/no-such-tok\/tokenizer\.json: no tokenizer here/);
  });

  test("a failed run keeps the previous dataset in place", () => {
    const out = join(tmp, "keep");
    expect(
      pack(["seq", "--tokenizer", tok, "--seq-len", "2", "--out", out, file("k.jsonl", jsonl([{ text: "abcdef" }]))])
        .code,
    ).toBe(0);
    const before = readFileSync(join(out, "manifest.json"), "utf8");
    expect(
      pack(["seq", "--tokenizer", tok, "--seq-len", "2", "--out", out, file("k2.jsonl", '{"text":"a"}\n{oops\n')]).code,
    ).toBe(1);
    expect(readFileSync(join(out, "manifest.json"), "utf8")).toBe(before);
  });
});
