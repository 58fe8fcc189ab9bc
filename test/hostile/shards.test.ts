// Hostile packed datasets: each case takes good shards from `pack`, damages them the way an attacker,
// a bad copy or a hand edit would, and trains on them as a user would. Every one must be refused
// before a step runs, in one line naming the file, within a bounded time, with every file left as it was.
import { beforeAll, describe, expect, test } from "bun:test";
import { cpSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { expectRefusal, expectUnchanged, run, seqData, snapshot, tmp } from "./_helpers.ts";
import { readHeader, readTensor, writeSafetensors, type TensorData } from "../../lib/io/safetensors.ts";

let base: string, seq: string, sft: string, model: string, tok: string;

beforeAll(() => {
  base = tmp("hostile-shards");
  ({ data: seq, model, tok } = seqData(base, ["--val-fraction", "0.1"]));
  const chat = join(base, "chat.jsonl");
  writeFileSync(
    chat,
    readFileSync(join(import.meta.dir, "..", "..", "examples", "data", "chat.jsonl"), "utf8")
      .split("\n")
      .slice(0, 40)
      .join("\n") + "\n",
  );
  sft = join(base, "sft");
  const r = run(["cmd/pack.ts", "sft", "--tokenizer", tok, "--seq-len", "32", "--out", sft, chat]);
  if (r.code !== 0) throw new Error(r.err);
});

let n = 0;
/** A fresh copy of a packed dataset in its own directory, to damage. */
function copy(src: string): { dir: string; data: string } {
  const dir = join(base, `case-${n++}`);
  const data = join(dir, "data");
  cpSync(src, data, { recursive: true });
  return { dir, data };
}

function editManifest(data: string, edit: (m: any) => void): void {
  const p = join(data, "manifest.json");
  const m = JSON.parse(readFileSync(p, "utf8"));
  edit(m);
  writeFileSync(p, JSON.stringify(m, null, 2));
}

/** Rewrite one shard's tensors and record the new file's sums, so only the values are wrong. */
function rewriteShard(data: string, file: string, edit: (t: Record<string, TensorData>) => void): void {
  const h = readHeader(join(data, file));
  const tensors = Object.fromEntries(h.tensors.map((t) => [t.name, readTensor(h, t.name)]));
  edit(tensors);
  const sum = writeSafetensors(join(data, file), tensors, h.metadata);
  editManifest(data, (m) =>
    Object.assign(
      m.shards.find((s: any) => s.file === file),
      sum,
    ),
  );
}

function train(cmd: "pretrain" | "sft", dir: string, data: string, timeoutMs = 30_000) {
  return run([`cmd/${cmd}.ts`, "--data", data, "--out", join(dir, "out"), "--model", model, "--max-steps", "1"], {
    timeoutMs,
  });
}

/** Damage a copy of `src`, train on it, and expect one line matching `re`, quickly, with nothing changed. */
function refused(src: () => string, damage: (data: string) => void, re: RegExp, cmd: "pretrain" | "sft" = "pretrain") {
  const { dir, data } = copy(src());
  damage(data);
  const before = snapshot(dir);
  const r = train(cmd, dir, data);
  expectRefusal(r, re);
  expect(r.ms).toBeLessThan(20_000);
  expectUnchanged(before, dir);
}

const SHARD = "train-00000.safetensors";

describe("manifest.json", () => {
  test("a shard named ../../../../etc/passwd is refused without opening it", () => {
    refused(
      () => seq,
      (d) => editManifest(d, (m) => (m.shards[0].file = "../../../../etc/passwd")),
      /manifest\.json: shards\.0: lists "\.\.\/\.\.\/\.\.\/\.\.\/etc\/passwd", which is not a plain file name/,
    );
  });

  test("an absolute side file name is refused", () => {
    refused(
      () => seq,
      (d) => editManifest(d, (m) => (m.shards[0].side = "/etc/passwd")),
      /manifest\.json: shards\.0: lists "\/etc\/passwd", which is not a plain file name/,
    );
  });

  test("a FIFO in place of a shard is refused at once, not waited on", () => {
    refused(
      () => seq,
      (d) => {
        rmSync(join(d, SHARD));
        expect(Bun.spawnSync(["mkfifo", join(d, SHARD)]).exitCode).toBe(0);
      },
      /train-00000\.safetensors: is a FIFO, expected a regular file/,
    );
  });

  test("a changed seq_len names the shard, the key and both shapes", () => {
    refused(
      () => seq,
      (d) => editManifest(d, (m) => (m.seq_len = 4)),
      /train-00000\.safetensors: input_ids is I32\[\d+,16\], but manifest\.json \(seq_len 4, \d+ rows\) says I32\[\d+,4\]/,
    );
  });

  test("keys edited away from seq_len", () => {
    refused(
      () => seq,
      (d) => editManifest(d, (m) => (m.keys.input_ids.shape = ["rows", 8])),
      /manifest\.json: keys\.input_ids: shape \[rows,8\], but seq_len 16 means \[rows,16\]/,
    );
  });

  test("row counts that do not add up", () => {
    refused(
      () => seq,
      (d) => editManifest(d, (m) => (m.rows.train += 1)),
      /manifest\.json: rows\.train is \d+, but its train shards hold \d+ rows/,
    );
  });

  test("a field of the wrong type", () => {
    refused(
      () => seq,
      (d) => editManifest(d, (m) => (m.tokenizer.vocab_size = "400")),
      /manifest\.json: tokenizer\.vocab_size: expected a number/,
    );
  });

  test("a changed crc32", () => {
    refused(
      () => seq,
      (d) => editManifest(d, (m) => (m.shards[0].crc32 = "00000000")),
      /train-00000\.safetensors: CRC-32 [0-9a-f]{8} differs from 00000000 that manifest\.json recorded/,
    );
  });
});

describe("shard contents", () => {
  test("one flipped bit in the data", () => {
    refused(
      () => seq,
      (d) => {
        const p = join(d, SHARD);
        const b = readFileSync(p);
        b[b.length - 100]! ^= 0x10;
        writeFileSync(p, b);
      },
      /train-00000\.safetensors: CRC-32 [0-9a-f]{8} differs from [0-9a-f]{8} that manifest\.json recorded/,
    );
  });

  test("one flipped bit in the header is reported as damage, not as a bad header", () => {
    refused(
      () => seq,
      (d) => {
        const p = join(d, SHARD);
        const b = readFileSync(p);
        b[20]! ^= 0x01;
        writeFileSync(p, b);
      },
      /train-00000\.safetensors: CRC-32 [0-9a-f]{8} differs/,
    );
  });

  test("a truncated shard", () => {
    refused(
      () => seq,
      (d) => {
        const p = join(d, SHARD);
        writeFileSync(p, readFileSync(p).subarray(0, 1000));
      },
      /train-00000\.safetensors: 1000 bytes, but manifest\.json recorded \d+/,
    );
  });

  test("a token id past the tokenizer's vocabulary (sums rewritten to match)", () => {
    refused(
      () => seq,
      (d) => rewriteShard(d, SHARD, (t) => ((t.input_ids!.data as Int32Array)[3 * 16 + 5] = 70000)),
      /train-00000\.safetensors: input_ids row 3 holds token id 70000, outside the vocabulary \[0, 400\) of the tokenizer this data was packed with/,
    );
  });

  test("a negative target id", () => {
    refused(
      () => seq,
      (d) => rewriteShard(d, SHARD, (t) => ((t.target_ids!.data as Int32Array)[0] = -7)),
      /train-00000\.safetensors: target_ids row 0 holds token id -7, outside the vocabulary/,
    );
  });

  test("a validation shard is checked too", () => {
    refused(
      () => seq,
      (d) => rewriteShard(d, "val-00000.safetensors", (t) => ((t.input_ids!.data as Int32Array)[17] = 400)),
      /val-00000\.safetensors: input_ids row 1 holds token id 400/,
    );
  });

  test("sft: a loss_mask of 2, a position past seq_len", () => {
    refused(
      () => sft,
      (d) => rewriteShard(d, SHARD, (t) => ((t.loss_mask!.data as Uint8Array)[2 * 32 + 1] = 2)),
      /train-00000\.safetensors: loss_mask row 2 holds 2; a mask holds only 0 or 1/,
      "sft",
    );
    refused(
      () => sft,
      (d) => rewriteShard(d, SHARD, (t) => ((t.position_ids!.data as Int32Array)[4] = 32)),
      /train-00000\.safetensors: position_ids row 0 holds position 32, outside \[0, 32\)/,
      "sft",
    );
  });

  test("a manifest from before checksums still trains", () => {
    const { dir, data } = copy(seq);
    editManifest(data, (m) => m.shards.forEach((s: any) => (delete s.bytes, delete s.crc32)));
    const r = train("pretrain", dir, data, 120_000);
    expect(r.code).toBe(0);
  }, 130_000);
});
