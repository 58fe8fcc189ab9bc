// Checkpoints a hostile user (or a bad disk) hands back to bunlm: a loss that diverges, weights that
// are NaN or flipped, a meta.json that lies, optimizer state of another model, an index that points
// outside its directory or at a FIFO, and a run killed in the middle of writing a checkpoint. Every
// refusal is one line, nothing that existed changes, and "the last good state" is always finite.
import { beforeAll, describe, expect, test } from "bun:test";
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  bun,
  events,
  expectRefusal,
  expectUnchanged,
  root,
  run,
  seqData,
  snapshot,
  tmp,
  caseDir,
  pretrained,
} from "./_helpers.ts";
import { readHeader, readTensor, writeSafetensors, type TensorData } from "../../lib/io/safetensors.ts";

let base: string, seq: string, model: string, ckpt: string;

beforeAll(() => {
  base = tmp("hostile-ckpt");
  ({ data: seq, model } = seqData(base));
  ckpt = pretrained(seq, model, join(base, "good"), 2);
});

/** A copy of the good checkpoint in a case directory of its own. */
function copyCkpt(): { dir: string; ck: string } {
  const dir = caseDir(base, false);
  const ck = join(dir, "ck");
  cpSync(ckpt, ck, { recursive: true });
  return { dir, ck };
}

const pretrain = (out: string, ...extra: string[]) =>
  run(["cmd/pretrain.ts", "--data", seq, "--out", out, "--batch-size", "2", ...extra]);

/** Rewrite a safetensors file's tensors (meta.json's sums are not updated unless asked). */
function rewrite(file: string, edit: (t: Record<string, TensorData>) => void): void {
  const h = readHeader(file);
  const t = Object.fromEntries(h.tensors.map((e) => [e.name, readTensor(h, e.name)]));
  edit(t);
  writeSafetensors(file, t, h.metadata);
}

function editMeta(ck: string, edit: (m: any) => void): void {
  const p = join(ck, "meta.json");
  const m = JSON.parse(readFileSync(p, "utf8"));
  edit(m);
  writeFileSync(p, JSON.stringify(m));
}

describe("finite state", () => {
  test("--max-lr Infinity, NaN or 1e999 is refused before anything is created", () => {
    const d = caseDir(base, false);
    for (const lr of ["Infinity", "NaN", "1e999", "-1"]) {
      const r = pretrain(join(d, "out"), "--model", model, "--max-lr", lr);
      expectRefusal(r, /^bunlm: error: --max-lr: (expected a finite number|must be positive|expected a number)/);
      expect(existsSync(d)).toBe(false);
    }
  });

  test("an update that makes the weights Inf is never saved; the good checkpoint before it is kept", () => {
    const d = caseDir(base, false);
    const out = join(d, "run");
    expect(pretrain(out, "--model", model, "--max-steps", "2", "--keep", "1").code).toBe(0);
    // weight decay at this rate makes 1 - lr·wd overflow to -Inf: the matrices become Inf at step 3
    // while its loss and gradient norm were finite
    const r = run([
      "cmd/pretrain.ts",
      "--resume",
      join(out, "step_000002"),
      "--out",
      out,
      "--max-steps",
      "6",
      "--max-lr",
      "3.3e38",
      "--weight-decay",
      "10",
      "--schedule",
      "constant",
      "--ckpt-interval",
      "1",
      "--keep",
      "1",
    ]);
    expectRefusal(
      r,
      /^bunlm: error: the weight "model\.[a-z_.0-9]+" holds \d+ NaN\/Inf values after step 3, so it was not saved; the last good checkpoint is .*run\/step_000002 \(lower --max-lr/,
    );
    expect(readdirSync(out).filter((f) => f.startsWith("step_"))).toEqual(["step_000002"]);
    expect(
      run(["cmd/generate.ts", "--ckpt", join(out, "step_000002"), "--prompt-ids", "1,2", "--max-new-tokens", "1"]).code,
    ).toBe(0);
  });

  test("a loss that turns NaN saves the finite state before it once, and says where", () => {
    const d = caseDir(base, false);
    const r = pretrain(
      join(d, "run"),
      "--model",
      model,
      "--max-steps",
      "20",
      "--max-lr",
      "1e30",
      "--schedule",
      "constant",
      "--grad-clip",
      "0",
    );
    expectRefusal(
      r,
      /^bunlm: error: loss is \S+, gradient norm \S+ at step (\d+); saved the last good state \(step \d+\) in .*run\/step_\d+ \(lower --max-lr/,
    );
    expect(
      events(r.out)
        .filter((e) => e.event === "checkpoint")
        .map((e) => e.reason),
    ).toEqual(["nan"]);
  });

  test("a checkpoint whose weights are NaN is refused by --init, --resume and generate, naming the tensor", () => {
    const { dir, ck } = copyCkpt();
    rewrite(join(ck, "model.safetensors"), (t) => (t["model.norm.weight"]!.data as Float32Array).fill(NaN));
    editMeta(ck, (m) => delete m.files); // sums that match, as if it had been saved like this
    const before = snapshot(dir);
    const msg = /model\.safetensors: "model\.norm\.weight" holds 32 NaN\/Inf values; these weights are not usable/;
    expectRefusal(pretrain(join(dir, "a"), "--init", ck), msg);
    expectRefusal(pretrain(join(dir, "b"), "--resume", ck), msg);
    expectRefusal(run(["cmd/generate.ts", "--ckpt", ck, "--prompt-ids", "1,2"]), msg);
    expectUnchanged(before, dir);
  });
});

describe("integrity", () => {
  test("one flipped bit in model.safetensors is caught by its CRC-32", () => {
    const { dir, ck } = copyCkpt();
    const p = join(ck, "model.safetensors");
    const b = readFileSync(p);
    b[b.length - 100]! ^= 0x10;
    writeFileSync(p, b);
    const before = snapshot(dir);
    const re =
      /model\.safetensors: CRC-32 [0-9a-f]{8} differs from [0-9a-f]{8} that .*meta\.json recorded \(the file is corrupted or was replaced\)/;
    expectRefusal(pretrain(join(dir, "a"), "--init", ck), re);
    expectRefusal(pretrain(join(dir, "b"), "--resume", ck), re);
    expectRefusal(run(["cmd/generate.ts", "--ckpt", ck, "--prompt-ids", "1,2"]), re);
    expectUnchanged(before, dir);
  });

  test("a truncated optimizer.safetensors is caught on resume", () => {
    const { dir, ck } = copyCkpt();
    const p = join(ck, "optimizer.safetensors");
    writeFileSync(p, readFileSync(p).subarray(0, 1000));
    const before = snapshot(dir);
    expectRefusal(
      pretrain(join(dir, "a"), "--resume", ck),
      /optimizer\.safetensors: 1000 bytes, but .*meta\.json recorded \d+ \(truncated or replaced/,
    );
    expectUnchanged(before, dir);
  });

  test("meta.json is checked by a schema: a negative step, a missing field, a bad sum", () => {
    for (const [edit, re] of [
      [(m: any) => (m.step = -5), /meta\.json: "step" is -5: expected a count, at least 0$/],
      [(m: any) => delete m.sampler, /meta\.json: "sampler" is missing$/],
      [
        (m: any) => (m.files["model.safetensors"].crc32 = "xyz"),
        /meta\.json: "files\.model\.safetensors\.crc32" is "xyz"/,
      ],
    ] as [(m: any) => void, RegExp][]) {
      const { dir, ck } = copyCkpt();
      editMeta(ck, edit);
      const before = snapshot(dir);
      expectRefusal(pretrain(join(dir, "a"), "--resume", ck), re);
      expectUnchanged(before, dir);
    }
  });

  test("optimizer state of another model shape is refused both ways, with nothing on stdout", () => {
    // a wider model's checkpoint
    const wide = caseDir(base, false);
    const wm = join(wide, "wide.json");
    mkdirSync(wide);
    writeFileSync(
      wm,
      JSON.stringify({ ...JSON.parse(readFileSync(model, "utf8")), hidden_size: 48, num_attention_heads: 4 }),
    );
    expect(pretrain(join(wide, "run"), "--model", wm, "--max-steps", "1").code).toBe(0);
    const wideOpt = join(wide, "run", "step_000001", "optimizer.safetensors");
    for (const [src, dst] of [
      [wideOpt, "ours <- wide"],
      [join(ckpt, "optimizer.safetensors"), "wide <- ours"],
    ] as const) {
      const { dir, ck } =
        dst === "ours <- wide"
          ? copyCkpt()
          : (() => {
              const d = caseDir(base, false);
              cpSync(join(wide, "run", "step_000001"), join(d, "ck"), { recursive: true });
              return { dir: d, ck: join(d, "ck") };
            })();
      cpSync(src, join(ck, "optimizer.safetensors"));
      editMeta(ck, (m) => delete m.files["optimizer.safetensors"]); // only the shapes can tell
      const before = snapshot(dir);
      const r = pretrain(join(dir, "a"), "--resume", ck);
      expectRefusal(
        r,
        /optimizer\.safetensors: "m\.model\.embed_tokens\.weight" is F32\[\d+,\d+\], the model needs F32\[\d+,\d+\] \(is this checkpoint from another model\?\)/,
      );
      expect(r.out).toBe("");
      expectUnchanged(before, dir);
    }
  });
});

describe("crafted safetensors headers", () => {
  // headers that lie: each reaches the loader through a command a user runs, and each is one line
  function crafted(header: unknown, data: Buffer, len?: bigint): string {
    const dir = caseDir(base, false);
    mkdirSync(dir);
    cpSync(join(ckpt, "config.json"), join(dir, "config.json"));
    const json = Buffer.from(JSON.stringify(header));
    const l = Buffer.alloc(8);
    l.writeBigUInt64LE(len ?? BigInt(json.length));
    writeFileSync(join(dir, "model.safetensors"), Buffer.concat([l, json, data]));
    return dir;
  }
  const cases: [string, () => string, RegExp][] = [
    [
      "a header length past the file",
      () => crafted({}, Buffer.alloc(0), 1n << 40n),
      /not a safetensors file|runs past the end/,
    ],
    [
      "overlapping tensors",
      () =>
        crafted(
          {
            a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
            b: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
          },
          Buffer.alloc(12),
        ),
      /overlaps the tensor before it/,
    ],
    [
      "a shape that does not match its bytes",
      () => crafted({ a: { dtype: "F32", shape: [1000], data_offsets: [0, 8] } }, Buffer.alloc(8)),
      /needs 4000 bytes but its offsets span 8/,
    ],
    [
      "an offset past the end",
      () => crafted({ a: { dtype: "F32", shape: [2], data_offsets: [8, 16] } }, Buffer.alloc(8)),
      /past the end|a gap of 8 bytes/,
    ],
    [
      "a negative dimension",
      () => crafted({ a: { dtype: "F32", shape: [-1], data_offsets: [0, 0] } }, Buffer.alloc(0)),
      /shape must be a list of non-negative integers/,
    ],
    ["a header that is not an object", () => crafted([1, 2, 3], Buffer.alloc(0)), /the header is not a JSON object/],
  ];
  for (const [name, make, re] of cases)
    test(name, () => {
      const dir = make();
      const before = snapshot(dir);
      expectRefusal(run(["cmd/generate.ts", "--ckpt", dir, "--prompt-ids", "1"]), re);
      expectRefusal(pretrain(join(dir, "out"), "--init", dir), re);
      expectUnchanged(before, dir);
    });
});

describe("names inside index files", () => {
  function sharded(target: string): { dir: string; ck: string } {
    const dir = caseDir(base, false);
    const ck = join(dir, "ck");
    mkdirSync(ck, { recursive: true });
    cpSync(join(ckpt, "config.json"), join(ck, "config.json"));
    const h = readHeader(join(ckpt, "model.safetensors"));
    writeFileSync(
      join(ck, "model.safetensors.index.json"),
      JSON.stringify({ weight_map: Object.fromEntries(h.tensors.map((t) => [t.name, target])) }),
    );
    return { dir, ck };
  }

  test("a weight_map entry outside the directory is refused and never opened", () => {
    writeFileSync(join(base, "secret.txt"), "PRIVATE KEY 12345678");
    const { dir, ck } = sharded("../../secret.txt");
    const before = snapshot(dir);
    const re =
      /model\.safetensors\.index\.json: lists "\.\.\/\.\.\/secret\.txt", which is not a plain file name in its directory/;
    for (const r of [
      run(["cmd/generate.ts", "--ckpt", ck, "--prompt-ids", "1"]),
      pretrain(join(dir, "a"), "--init", ck),
      run(["cmd/ckpt-inspect.ts", ck]),
    ]) {
      expectRefusal(r, re);
      expect(r.err).not.toContain("PRIVATE");
    }
    expectUnchanged(before, dir);
  });

  test("a weight_map entry naming a FIFO is refused at once, not waited on", () => {
    const { ck } = sharded("pipe");
    expect(Bun.spawnSync(["mkfifo", join(ck, "pipe")]).exitCode).toBe(0);
    for (const r of [
      run(["cmd/ckpt-inspect.ts", ck], { timeoutMs: 20_000 }),
      run(["cmd/generate.ts", "--ckpt", ck, "--prompt-ids", "1"], { timeoutMs: 20_000 }),
    ]) {
      expectRefusal(r, /ck\/pipe: is a FIFO, expected a regular file/);
      expect(r.ms).toBeLessThan(15_000);
    }
    // and ckpt-inspect on a FIFO given directly
    expectRefusal(
      run(["cmd/ckpt-inspect.ts", join(ck, "pipe")], { timeoutMs: 20_000 }),
      /pipe: is a FIFO, expected a regular file/,
    );
  });
});

describe("kills", () => {
  test("SIGKILL at any moment of a run that checkpoints every step: the latest checkpoint resumes bit-identically", async () => {
    const d = caseDir(base, false);
    // a constant rate: how many steps the run was meant to have does not change the weights
    const common = [
      "--data",
      seq,
      "--model",
      model,
      "--batch-size",
      "2",
      "--ckpt-interval",
      "1",
      "--keep",
      "2",
      "--seed",
      "4",
      "--max-lr",
      "3e-3",
      "--schedule",
      "constant",
    ];
    for (const [k, delayMs] of [0, 7, 23].entries()) {
      const out = join(d, `killed-${k}`);
      const p = Bun.spawn([bun, "cmd/pretrain.ts", ...common, "--out", out, "--max-steps", "100000"], {
        cwd: root,
        stdout: "pipe",
        stderr: "ignore",
      });
      const reader = p.stdout.getReader();
      let seen = "";
      while (!seen.includes('"step":5,')) seen += new TextDecoder().decode((await reader.read()).value);
      await Bun.sleep(delayMs); // somewhere in a step or in the middle of writing its checkpoint
      p.kill("SIGKILL");
      await p.exited;
      const last = Number(readFileSync(join(out, "latest", "meta.json"), "utf8").match(/"step": (\d+)/)![1]);
      const end = last + 3;
      const r = run(["cmd/pretrain.ts", "--resume", join(out, "latest"), "--out", out, "--max-steps", String(end)]);
      expect(r.code).toBe(0);
      expect(r.err).toContain("taking over the lock");
      const full = run(["cmd/pretrain.ts", ...common, "--out", join(d, `full-${k}`), "--max-steps", String(end)]);
      expect(full.code).toBe(0);
      const name = `step_${String(end).padStart(6, "0")}`;
      expect(
        readFileSync(join(out, name, "model.safetensors")).equals(
          readFileSync(join(d, `full-${k}`, name, "model.safetensors")),
        ),
      ).toBe(true);
      expect(readdirSync(out).filter((f) => f.startsWith("."))).toEqual([]); // no temporary files left
      const steps = events(readFileSync(join(out, "metrics.jsonl"), "utf8"))
        .filter((e) => e.event === "step")
        .map((e) => e.step);
      expect(steps).toEqual(Array.from({ length: end }, (_, i) => i + 1));
    }
  });
});

describe("a full disk", () => {
  // a real full file system needs a mount, which needs root; CI and the README's machines run as root
  const root_ = process.getuid?.() === 0 && Bun.spawnSync(["mount", "--version"]).exitCode === 0;
  test.if(root_)("a checkpoint or a pack that does not fit stops with one line and leaves no partial files", () => {
    const mnt = caseDir(base, false);
    mkdirSync(mnt);
    expect(Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", mnt]).exitCode).toBe(0);
    try {
      const r = pretrain(join(mnt, "run"), "--model", model, "--max-steps", "1");
      expectRefusal(r, /no space left on the device/);
      const left = Bun.spawnSync(["find", mnt, "-name", "*tmp*"]).stdout.toString().trim();
      expect(left).toBe("");
      const text = join(root, "examples", "data", "corpus_en.txt");
      const p = run([
        "cmd/pack.ts",
        "seq",
        "--tokenizer",
        join(base, "tok"),
        "--seq-len",
        "16",
        "--out",
        join(mnt, "seq"),
        "--lines",
        text,
      ]);
      expectRefusal(p, /no space left on the device/);
      expect(readdirSync(mnt).filter((f) => f.includes("seq"))).toEqual([]);
      const t = run(["cmd/tokenize.ts", "train", "--vocab-size", "20000", "--out", join(mnt, "tok"), "--lines", text]);
      expectRefusal(t, /no space left on the device; nothing was written/);
      expect(
        Bun.spawnSync(["find", join(mnt, "tok"), "-name", "*.tmp"])
          .stdout.toString()
          .trim(),
      ).toBe("");
    } finally {
      Bun.spawnSync(["umount", mnt]);
    }
  });
});
