// pack's job called directly (lib/data/pack.ts): its flags checked with messages that name them, a
// flag of another type refused, "auto" sizes, the summary line's counts, and the refusals of a dataset
// that would hold no rows. The rows themselves are checked end to end in test/cmd/pack.test.ts.
import { beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type PackArgs, packInputs, packOptions } from "../../lib/data/pack.ts";
import { readKey, readManifest } from "../../lib/data/shards.ts";
import { byteTokenizer, EOS } from "./pack_test_tokenizer.ts";

const tmp = mkdtempSync(join(tmpdir(), "bunlm-packjob-"));
let tok = "";

beforeAll(async () => {
  tok = await byteTokenizer();
});

function file(name: string, text: string): string {
  const p = join(tmp, name);
  writeFileSync(p, text);
  return p;
}

const args = (type: string, out: string, more: Partial<PackArgs> = {}): PackArgs => ({
  type,
  tokenizer: tok,
  "seq-len": "4",
  out: join(tmp, out),
  overwrite: false,
  field: "text",
  seed: "0",
  "val-fraction": "0",
  "doc-mask": false,
  overlong: "truncate",
  "response-len": "auto",
  "shard-rows": "auto",
  lines: false,
  format: "auto",
  lossy: false,
  ...more,
});

describe("packOptions", () => {
  test("numbers parsed; auto sizes stay unset for the packer to derive", () => {
    const o = packOptions(args("grpo", "o", { "seq-len": "8", seed: "7", "response-len": "3" }), []);
    expect(o).toEqual({
      type: "grpo",
      "seq-len": 8,
      out: join(tmp, "o"),
      seed: 7,
      "val-fraction": 0,
      overlong: "truncate",
      "response-len": 3,
      "shard-rows": undefined,
    });
  });

  const refusals: [string, Partial<PackArgs>, string][] = [
    ["an unknown type", { type: "chat" }, "option --type: TYPE must be seq, sft, dpo or grpo"],
    ["L of 1", { "seq-len": "1" }, "option --seq-len: must be at least 2 (one input and one target)"],
    ["L of 2^20 + 1", { "seq-len": "1048577" }, "option --seq-len: must be at most 1048576"],
    ["a fractional L", { "seq-len": "4.5" }, "option --seq-len: expected a whole number"],
    ["a val fraction of 1", { "val-fraction": "1" }, "option --val-fraction: must be in [0, 1)"],
    ["a seed of 2^32", { seed: "4294967296" }, "option --seed: must be below 2^32"],
    ["shard rows that are not a number", { "shard-rows": "many" }, "option --shard-rows: expected a number"],
  ];
  for (const [name, more, message] of refusals)
    test(`refused: ${name}`, () => expect(() => packOptions(args("seq", "o", more), [])).toThrow(message));

  test("a flag only another type reads is refused when given, not when it holds its default", () => {
    expect(() => packOptions(args("seq", "o"), ["response-len"])).toThrow(
      "--response-len applies to pack grpo, not seq",
    );
    expect(() => packOptions(args("sft", "o"), ["doc-mask"])).toThrow("--doc-mask applies to pack seq, not sft");
    expect(() => packOptions(args("seq", "o"), ["overlong", "seed"])).toThrow(
      "--overlong applies to pack sft, dpo, grpo, not seq",
    );
    expect(packOptions(args("seq", "o"), ["seed", "field"]).type).toBe("seq");
  });
});

describe("packInputs", () => {
  test("seq: the summary line, and the rows a stream of documents joined by <|endoftext|> gives", async () => {
    const inp = file("docs.jsonl", '{"text":"abc"}\n{"text":"de"}\n');
    const s = await packInputs([inp], args("seq", "seq"), []);
    // a b c EOS d e EOS: 7 tokens → one row of L+1 = 5, the row after it would need 3 more
    expect(s).toMatchObject({
      event: "summary",
      type: "seq",
      rows: { train: 1, val: 0 },
      shards: 1,
      inputs: 2,
      tokens: 4,
      padding_fraction: 0,
      dropped_rows: 0,
      truncated_rows: 0,
      tail_tokens: 2,
      out: join(tmp, "seq"),
    });
    expect(Array.from(readKey(join(tmp, "seq"), "train", "input_ids").data)).toEqual([97, 98, 99, EOS]);
    expect(readManifest(join(tmp, "seq")).sources).toEqual([inp]);
  });

  test("seq with a tokenizer that adds a bos (Llama 2: add_bos_token): <s> doc </s> <s> doc </s>", async () => {
    const llama2 = join(import.meta.dir, "..", "..", "node_modules", "@lenml", "tokenizer-llama2", "models");
    const inp = file("two.jsonl", '{"text":"Hi"}\n{"text":"Yo"}\n{"text":"Ok"}\n');
    await packInputs([inp], { ...args("seq", "seq-bos"), tokenizer: llama2, "seq-len": "7" }, []);
    // Llama 2's ids: <s> 1, </s> 2; "Hi" → [15359], "Yo" → [627, 28709] (the tokenizers library's ids)
    expect(Array.from(readKey(join(tmp, "seq-bos"), "train", "input_ids").data)).toEqual([
      1, 15359, 2, 1, 627, 28709, 2,
    ]);
  });

  test("nothing to write is refused, and no directory is left behind", async () => {
    const short = file("short.jsonl", '{"text":"ab"}\n');
    await expect(packInputs([short], args("seq", "empty"), [])).rejects.toThrow(
      "no rows to write: 1 inputs gave no complete row of 5 tokens",
    );
    const same = file("same.jsonl", '{"prompt":"p","chosen":"x","rejected":"x"}\n');
    await expect(packInputs([same], args("dpo", "same"), [])).rejects.toThrow(
      "no rows to write: chosen and rejected are the same tokens in every pair (1, after truncation to 4); there is nothing to prefer",
    );
    expect(existsSync(join(tmp, "empty"))).toBe(false);
    expect(existsSync(join(tmp, "same"))).toBe(false);
  });

  test("--lossy counts the replacements in the summary", async () => {
    writeFileSync(join(tmp, "bad.txt"), Uint8Array.from([0x61, 0xff, 0x62, 0x63, 0x64, 0x65]));
    const s = await packInputs([join(tmp, "bad.txt")], args("seq", "lossy", { lossy: true }), []);
    expect(s.replaced_invalid_utf8).toBe(1);
    expect(s.tokens).toBe(8); // a, U+FFFD's 3 bytes, b c d e, EOS: 9 tokens make two rows of 4 (+1 target each)
  });
});
