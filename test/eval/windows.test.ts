// How eval cuts text into scored tokens: lm-eval's rolling windows (the example of its
// loglikelihood_rolling docstring), _encode_pair's context/continuation split on a tokenizer with
// merges, the left cut of a pair longer than the window, which special token stands first, and the
// task rows that are refused, each naming its file and row.
import { beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { IGNORE_INDEX } from "../../lib/ops/cross_entropy.ts";
import { readRows } from "../../lib/io/readers.ts";
import { Tokenizer } from "../../lib/tokenizer/tokenizer.ts";
import { trainTokenizer } from "../../lib/tokenizer/train.ts";
import { rollingWindows, scoringTokens } from "../../lib/train/eval_text.ts";
import { encodePair, pairRequest, readQuestions } from "../../lib/train/eval_tasks.ts";

const X = IGNORE_INDEX;
const fixture = join(import.meta.dir, "fixtures", "tiny-bytes");
const tmp = mkdtempSync(join(tmpdir(), "bunlm-evalwin-"));
const arr = (r: { ids: ArrayLike<number>; targets: ArrayLike<number> }) => ({
  ids: Array.from(r.ids),
  targets: Array.from(r.targets),
});

describe("rollingWindows", () => {
  test("lm-eval's example: tokens 0..9, prefix P, L = 4; each token predicted once, the last window refilled", () => {
    const P = 99;
    expect(rollingWindows([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], P, 4).map(arr)).toEqual([
      { ids: [P, 0, 1, 2], targets: [0, 1, 2, 3] },
      { ids: [3, 4, 5, 6], targets: [4, 5, 6, 7] },
      { ids: [5, 6, 7, 8], targets: [X, X, 8, 9] },
    ]);
  });

  test("a document within one window, an empty one, and no prefix token (the first token is context only)", () => {
    expect(rollingWindows([5, 6], 1, 4).map(arr)).toEqual([{ ids: [1, 5], targets: [5, 6] }]);
    expect(rollingWindows([], 1, 4)).toEqual([]);
    expect(rollingWindows([5, 6, 7, 8, 9, 10], null, 4).map(arr)).toEqual([
      { ids: [5, 6, 7, 8], targets: [6, 7, 8, 9] },
      { ids: [6, 7, 8, 9], targets: [X, X, X, 10] },
    ]);
    expect(rollingWindows([5], null, 4)).toEqual([]);
  });
});

describe("encodePair", () => {
  let tok: Tokenizer;
  beforeAll(async () => {
    async function* docs() {
      for (let i = 0; i < 20; i++) yield { text: "the answer is yes. the answer is no.", source: "x", index: i };
    }
    await trainTokenizer(docs(), join(tmp, "tok"), { vocabSize: 300, minFrequency: 1 });
    tok = Tokenizer.fromDir(join(tmp, "tok"));
  });
  const plain = { prefix: 256, addedBos: null };

  test("trailing whitespace of the context joins the continuation, whose tokens are those past the context's", () => {
    // " yes" is one merged token: split after the space, "yes" alone would be scored as other tokens
    const e = encodePair(tok, plain, "the answer is ", "yes");
    expect(e.context).toEqual(tok.encode("the answer is"));
    expect(e.continuation).toEqual(tok.encode(" yes"));
    expect(tok.encode(" yes")).toHaveLength(1);
    expect(encodePair(tok, plain, "the answer is", " yes")).toEqual(e);
  });

  test("an empty context is the prefix token; a tokenizer that adds a bos gets it before the context", () => {
    expect(encodePair(tok, plain, "", " no")).toEqual({ context: [256], continuation: tok.encode(" no") });
    const bos = { prefix: 258, addedBos: 258 };
    const e = encodePair(tok, bos, "the answer is", " no");
    expect(e.context).toEqual([258, ...tok.encode("the answer is")]);
    expect(e.continuation).toEqual(tok.encode(" no"));
    // lm-eval encodes an empty context's continuation without special tokens
    expect(encodePair(tok, bos, "", " no").continuation).toEqual(tok.encode(" no"));
  });

  test("pairRequest keeps the last L + 1 tokens and scores the continuation's positions", () => {
    expect(arr(pairRequest([1, 2, 3], [4, 5], 8))).toEqual({ ids: [1, 2, 3, 4], targets: [X, X, 4, 5] });
    expect(arr(pairRequest([1, 2, 3, 4, 5, 6], [7, 8], 4))).toEqual({ ids: [4, 5, 6, 7], targets: [X, X, 7, 8] });
  });
});

describe("scoringTokens", () => {
  test("bunlm's tokenizer: <|endoftext|> is the prefix, no bos added", () => {
    expect(scoringTokens(Tokenizer.fromDir(fixture), fixture)).toEqual({ prefix: 256, addedBos: null });
  });

  test("add_bos_token, or a post-processor that puts the bos first (Llama 3), marks the bos as added", () => {
    const tok = Tokenizer.fromDir(fixture);
    tok.config = { bos_token: "<|im_start|>", eos_token: "<|im_end|>", add_bos_token: true };
    expect(scoringTokens(tok, fixture)).toEqual({ prefix: 258, addedBos: 258 });
    tok.config = { bos_token: { content: "<|im_start|>" }, eos_token: "<|im_end|>" };
    const dir = join(tmp, "pp");
    Bun.spawnSync(["mkdir", "-p", dir]);
    const single = [{ SpecialToken: { id: "<|im_start|>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }];
    writeFileSync(
      join(dir, "tokenizer.json"),
      JSON.stringify({
        post_processor: {
          type: "Sequence",
          processors: [{ type: "ByteLevel" }, { type: "TemplateProcessing", single }],
        },
      }),
    );
    expect(scoringTokens(tok, dir)).toEqual({ prefix: 258, addedBos: 258 });
    // Qwen: no bos at all, so the eos is the prefix and nothing is added
    tok.config = { bos_token: null, eos_token: "<|im_end|>", add_bos_token: false };
    expect(scoringTokens(tok, fixture)).toEqual({ prefix: 259, addedBos: null });
  });
});

describe("task rows refused", () => {
  const cases: [string, string, string][] = [
    ["a missing answer", '{"context": "a", "choices": ["b", "c"]}', 'no "answer" field'],
    [
      "an answer past the choices",
      '{"context": "a", "choices": ["b", "c"], "answer": 2}',
      "answer: 2 is past the last choice",
    ],
    ["a negative answer", '{"context": "a", "choices": ["b"], "answer": -1}', "answer: must be 0 or more"],
    ["empty choices", '{"context": "a", "choices": [], "answer": 0}', "choices: is empty"],
    ["an empty choice", '{"context": "a", "choices": ["b", ""], "answer": 0}', "choices.1: is empty"],
    ["a context that is not text", '{"context": 3, "choices": ["b"], "answer": 0}', "context: expected a string"],
    ["a row that is not JSON", '{"context": "a", "choices": [', "not valid JSON"],
    ["a row that is not an object", '["a", "b"]', "expected a JSON object"],
  ];
  for (const [what, row, msg] of cases)
    test(what, async () => {
      const f = join(tmp, "task.jsonl");
      writeFileSync(f, `{"context": "ok", "choices": ["x"], "answer": 0}\n${row}\n`);
      const err = await readQuestions(readRows([f]), 0, f).catch((e) => e as Error);
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).message.startsWith(`${f}:2: `)).toBe(true);
      expect((err as Error).message).toContain(msg);
      expect((err as Error).message).not.toContain("\n");
    });

  test("a file with no questions", async () => {
    const f = join(tmp, "empty.jsonl");
    writeFileSync(f, "\n");
    expect(readQuestions(readRows([f]), 0, f)).rejects.toThrow(`${f}: no questions`);
  });
});
