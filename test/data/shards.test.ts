// Loading packed datasets in-process: the counts ShardDataset exposes, grpo's side files (read when
// training starts, so checked here rather than through a command), and the checks that have no
// command-level case in test/hostile/shards.test.ts.
import { beforeAll, describe, expect, test } from "bun:test";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { byteTokenizer } from "./pack_test_tokenizer.ts";
import { readKey, readManifest, readSide } from "../../lib/data/shards.ts";
import { ShardDataset } from "../../lib/train/dataset.ts";
import { fileSum } from "../../lib/io/files.ts";
import { InputError } from "../../lib/base/errors.ts";
import { readHeader, readTensor, writeSafetensors, type TensorData } from "../../lib/io/safetensors.ts";

const root = join(import.meta.dir, "..", "..");
const tmp = mkdtempSync(join(tmpdir(), "bunlm-shards-"));
const jsonl = (rows: unknown[]) => rows.map((r) => JSON.stringify(r)).join("\n") + "\n";
const conv = (q: string, a: string) => ({
  messages: [
    { role: "user", content: q },
    { role: "assistant", content: a },
  ],
});
let sft: string, grpo: string, offline: string, dpo: string;

function pack(tok: string, args: string[], rows: unknown[], name: string): string {
  const input = join(tmp, `${name}.jsonl`),
    out = join(tmp, name);
  writeFileSync(input, jsonl(rows));
  const p = Bun.spawnSync([
    process.execPath,
    join(root, "cmd", "pack.ts"),
    args[0]!,
    "--tokenizer",
    tok,
    "--out",
    out,
    ...args.slice(1),
    input,
  ]);
  if (p.exitCode !== 0) throw new Error(p.stderr.toString());
  return out;
}

beforeAll(async () => {
  const tok = await byteTokenizer();
  sft = pack(
    tok,
    ["sft", "--seq-len", "40", "--shard-rows", "2"],
    [conv("hi", "yo"), conv("what", "no"), conv("a", "bcd"), conv("x", "y")],
    "sft",
  );
  grpo = pack(
    tok,
    ["grpo", "--seq-len", "8", "--shard-rows", "2"],
    [
      { prompt: "ab", answer: "1" },
      { prompt: "c", answer: "2" },
      { prompt: "d", answer: "3" },
    ],
    "grpo",
  );
  offline = pack(
    tok,
    ["grpo", "--seq-len", "4", "--response-len", "3"],
    [{ prompt: "q", responses: ["x", "yz"], rewards: [1, 0] }],
    "offline",
  );
  dpo = pack(tok, ["dpo", "--seq-len", "8"], [{ prompt: "p", chosen: "c", rejected: "r" }], "dpo");
});

let n = 0;
function copy(src: string): string {
  const d = join(tmp, `case-${n++}`);
  cpSync(src, d, { recursive: true });
  return d;
}

function editManifest(d: string, edit: (m: any) => void): void {
  const m = JSON.parse(readFileSync(join(d, "manifest.json"), "utf8"));
  edit(m);
  writeFileSync(join(d, "manifest.json"), JSON.stringify(m));
}

function rewriteShard(d: string, file: string, edit: (t: Record<string, TensorData>) => void): void {
  const h = readHeader(join(d, file));
  const tensors = Object.fromEntries(h.tensors.map((t) => [t.name, readTensor(h, t.name)]));
  edit(tensors);
  const sum = writeSafetensors(join(d, file), tensors, h.metadata);
  editManifest(d, (m) =>
    Object.assign(
      m.shards.find((s: any) => s.file === file),
      sum,
    ),
  );
}

function refusal(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(InputError);
    return (e as Error).message;
  }
  throw new Error("expected a refusal");
}

describe("ShardDataset counts", () => {
  test("sft: trainedTokens is the number of loss_mask ones, over every shard", () => {
    const ds = new ShardDataset(sft);
    const ones = (readKey(sft, "train", "loss_mask").data as Uint8Array).reduce((a, b) => a + b, 0);
    expect(readManifest(sft).shards.length).toBeGreaterThan(1);
    expect(ones).toBeGreaterThan(0);
    expect(ds.trainedTokens).toBe(ones);
    ds.close();
  });

  test("sft: a dataset whose loss_mask is all zero counts 0 trained tokens", () => {
    const d = copy(sft);
    for (const s of readManifest(d).shards) rewriteShard(d, s.file, (t) => (t.loss_mask!.data as Uint8Array).fill(0));
    expect(new ShardDataset(d).trainedTokens).toBe(0);
  });

  test("dpo has no single count; scan: false skips the pass", () => {
    expect(new ShardDataset(dpo).trainedTokens).toBeNull();
    const d = copy(sft);
    editManifest(d, (m) => (m.shards[0].crc32 = "00000000"));
    expect(new ShardDataset(d, "train", { scan: false }).trainedTokens).toBeNull();
    expect(refusal(() => new ShardDataset(d))).toMatch(
      /train-00000\.safetensors: CRC-32 [0-9a-f]{8} differs from 00000000/,
    );
  });
});

describe("grpo side files", () => {
  test("read back row-aligned, verified", () => {
    expect(
      readSide(grpo, "train")
        .map((s) => s.answer)
        .sort(),
    ).toEqual(["1", "2", "3"]);
  });

  test("a FIFO in place of a side file is refused at once", () => {
    const d = copy(grpo);
    const side = readManifest(d).shards[0]!.side!;
    rmSync(join(d, side));
    expect(Bun.spawnSync(["mkfifo", join(d, side)]).exitCode).toBe(0);
    expect(refusal(() => readSide(d, "train"))).toMatch(new RegExp(`${side}: is a FIFO, expected a regular file`));
  });

  test("an edited side file fails its checksum; with sums rewritten, a missing record is still caught", () => {
    const d = copy(grpo);
    const side = readManifest(d).shards[0]!.side!;
    const p = join(d, side);
    writeFileSync(p, readFileSync(p, "utf8").replace(/"\d"/, '"9"'));
    expect(refusal(() => readSide(d, "train"))).toMatch(/CRC-32 [0-9a-f]{8} differs/);
    writeFileSync(p, readFileSync(p, "utf8").split("\n")[0] + "\n");
    editManifest(d, (m) => Object.assign(m.shards[0], { side_bytes: fileSum(p).bytes, side_crc32: fileSum(p).crc32 }));
    expect(refusal(() => readSide(d, "train"))).toMatch(
      /1 records, but its shard train-00000\.safetensors holds 2 rows/,
    );
  });

  test("a side name that leaves the directory", () => {
    const d = copy(grpo);
    editManifest(d, (m) => (m.shards[0].side = "../grpo.jsonl"));
    expect(refusal(() => readSide(d, "train"))).toMatch(
      /shards\.0: lists "\.\.\/grpo\.jsonl", which is not a plain file name/,
    );
  });

  test("offline: a NaN reward and a mask of 3", () => {
    const d = copy(offline);
    rewriteShard(d, "train-00000.safetensors", (t) => ((t.rewards!.data as Float32Array)[1] = NaN));
    expect(refusal(() => new ShardDataset(d))).toMatch(/rewards row 0 holds NaN; rewards must be finite/);
    const e = copy(offline);
    rewriteShard(e, "train-00000.safetensors", (t) => ((t.masks!.data as Uint8Array)[4] = 3));
    expect(refusal(() => new ShardDataset(e))).toMatch(/masks row 0 holds 3; a mask holds only 0 or 1/);
  });
});

describe("manifest checks", () => {
  const cases: [string, (m: any) => void, RegExp][] = [
    ["another version", (m) => (m.version = 2), /manifest\.json: version: expected 1/],
    [
      "a key pack does not write",
      (m) => (m.keys.extra = { dtype: "I32", shape: ["rows", 40] }),
      /keys: lists extra, input_ids, loss_mask, position_ids, target_ids, but `pack sft` writes/,
    ],
    [
      "a dtype pack does not write",
      (m) => (m.keys.loss_mask.dtype = "F32"),
      /keys\.loss_mask: dtype F32, but `pack sft` writes U8/,
    ],
    ["a shard listed twice", (m) => m.shards.push({ ...m.shards[0] }), /lists train-00000\.safetensors a second time/],
    ["a crc32 without bytes", (m) => delete m.shards[0].bytes, /shards\.0: bytes and crc32 come together/],
    [
      "a pad id past the vocabulary",
      (m) => (m.tokenizer.pad_id = 9999),
      /tokenizer: eos_id \d+ and pad_id 9999 must lie below vocab_size/,
    ],
    ["shards that is not a list", (m) => (m.shards = {}), /manifest\.json: shards: expected a list of shards/],
  ];
  for (const [name, edit, re] of cases)
    test(name, () => {
      const d = copy(sft);
      editManifest(d, edit);
      expect(refusal(() => readManifest(d))).toMatch(re);
    });

  test("a shard with a tensor the manifest does not list", () => {
    const d = copy(sft);
    rewriteShard(d, "train-00000.safetensors", (t) => (t.extra = { dtype: "U8", shape: [1], data: new Uint8Array(1) }));
    expect(refusal(() => new ShardDataset(d))).toMatch(
      /train-00000\.safetensors: holds tensors that manifest\.json does not list/,
    );
  });
});
