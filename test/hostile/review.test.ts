// The cases an independent hostile review found after the trust policy first landed, replayed: user
// files whose names look like bunlm's temporaries, user files inside checkpoint directories, --out as
// a symbolic link or as ".", repeated flags, JSONL piped into pack, a resume from another directory,
// DPO pairs with nothing to prefer, weights the config has no place for, huge timeouts, modules that
// hang while loading, replies without a newline, locks of reused pids, lying meta.json, absurd sizes.
import { beforeAll, describe, expect, test } from "bun:test";
import {
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import {
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
import { readHeader, readTensor, writeSafetensors } from "../../lib/io/safetensors.ts";

let base: string, tok: string, seq: string, model: string, ckpt: string;
const text = join(root, "examples", "data", "bilingual.txt");
const DEAD = "99999999";

beforeAll(() => {
  base = tmp("hostile-review");
  ({ tok, data: seq, model } = seqData(base));
  ckpt = pretrained(seq, model, join(base, "pt"), 2, "--ckpt-interval", "1");
});

const fresh = () => caseDir(base);
const pack = (out: string, ...extra: string[]) =>
  run(["cmd/pack.ts", "seq", "--tokenizer", tok, "--seq-len", "16", "--out", out, "--lines", ...extra, text]);
const pretrain = (...a: string[]) => run(["cmd/pretrain.ts", "--data", seq, "--batch-size", "2", ...a]);

describe("names that look like temporaries", () => {
  test("a user's seq.old-2019, seq.tmp-4242 and a bunlm-named directory holding other files survive pack", () => {
    const d = fresh();
    const out = join(d, "seq");
    for (const x of ["seq.old-2019", "seq.tmp-4242", `seq.bunlm-tmp-${DEAD}`, `seq.bunlm-old-${DEAD}`]) {
      mkdirSync(join(d, x));
      writeFileSync(join(d, x, "notes.txt"), "mine");
    }
    const before = snapshot(d);
    const r = pack(out);
    expect(r.code).toBe(0);
    expect(r.err).toBe("");
    expectUnchanged(before, d);
  });

  test("user files inside a checkpoint directory survive retention, --overwrite and a step saved again", () => {
    const d = fresh();
    const out = join(d, "run");
    expect(
      pretrain("--out", out, "--model", model, "--max-steps", "2", "--ckpt-interval", "1", "--keep", "5").code,
    ).toBe(0);
    writeFileSync(join(out, "step_000001", "NOTES.md"), "mine");
    writeFileSync(join(out, "step_000002", "samples.jsonl"), "{}\n");
    // resume from step 1 (step 2 is written again), keep 1 (step 1 is pruned)
    expect(
      run([
        "cmd/pretrain.ts",
        "--resume",
        join(out, "step_000001"),
        "--out",
        out,
        "--max-steps",
        "3",
        "--ckpt-interval",
        "1",
        "--keep",
        "1",
      ]).code,
    ).toBe(0);
    expect(readFileSync(join(out, "step_000001", "NOTES.md"), "utf8")).toBe("mine");
    expect(readdirSync(join(out, "step_000001"))).toEqual(["NOTES.md"]);
    expect(readFileSync(join(out, "step_000002", "samples.jsonl"), "utf8")).toBe("{}\n");
    expect(pretrain("--out", out, "--model", model, "--max-steps", "1", "--overwrite").code).toBe(0);
    expect(readFileSync(join(out, "step_000001", "NOTES.md"), "utf8")).toBe("mine");
    expect(existsSync(join(out, "step_000001", "model.safetensors"))).toBe(true);
  });
});

describe("--out forms", () => {
  test("pack --out a symbolic link writes where it points and keeps the link; a dangling link is refused", () => {
    const d = fresh();
    mkdirSync(join(d, "big-disk"));
    symlinkSync(join(d, "big-disk"), join(d, "seq"));
    expect(pack(join(d, "seq")).code).toBe(0);
    expect(lstatSync(join(d, "seq")).isSymbolicLink()).toBe(true);
    expect(existsSync(join(d, "big-disk", "manifest.json"))).toBe(true);
    expect(pack(join(d, "seq"), "--overwrite", "--seed", "3").code).toBe(0);
    expect(lstatSync(join(d, "seq")).isSymbolicLink()).toBe(true);
    symlinkSync(join(d, "nowhere"), join(d, "dangling"));
    const before = snapshot(d);
    expectRefusal(pack(join(d, "dangling")), /--out: .*dangling is a symbolic link to nothing that exists/);
    expectRefusal(
      pretrain("--out", join(d, "dangling"), "--model", model),
      /dangling is a symbolic link to nothing that exists \(or to itself\)/,
    );
    expectUnchanged(before, d);
  });

  test("pack --out . into an empty current directory", () => {
    const d = fresh();
    const r = run(
      [join(root, "cmd", "pack.ts"), "seq", "--tokenizer", tok, "--seq-len", "16", "--out", ".", "--lines", text],
      { cwd: d },
    );
    expect(r.code).toBe(0);
    expect(readdirSync(d).sort()).toEqual(["manifest.json", "train-00000.safetensors"]);
  });
});

describe("flags", () => {
  test("a flag given twice is refused; --callback may repeat and every module is loaded", () => {
    const d = fresh();
    expectRefusal(
      pretrain("--out", join(d, "o"), "--model", model, "--batch-size", "3"),
      /^bunlm: error: --batch-size is given twice; give it once$/,
    );
    for (const k of ["a", "b"])
      writeFileSync(
        join(d, `${k}.ts`),
        `export default { on_train_end() { require("node:fs").writeFileSync(${JSON.stringify(join(d, `${k}.done`))}, "1"); } };\n`,
      );
    expect(
      pretrain(
        "--out",
        join(d, "o"),
        "--model",
        model,
        "--max-steps",
        "1",
        "--callback",
        join(d, "a.ts"),
        "--callback",
        join(d, "b.ts"),
      ).code,
    ).toBe(0);
    expect(existsSync(join(d, "a.done")) && existsSync(join(d, "b.done"))).toBe(true);
  });

  test("a config key that is an Object property name is an unknown key, not a crash", () => {
    const d = fresh();
    writeFileSync(join(d, "c.json"), '{"constructor": 1}');
    expectRefusal(
      pretrain("--out", join(d, "o"), "--model", model, "--config", join(d, "c.json")),
      /c\.json: unknown key "constructor"/,
    );
  });

  test("pack refuses a flag of another pack type, and an absurd --seq-len without leaving anything", () => {
    const d = fresh();
    expectRefusal(pack(join(d, "o"), "--overlong", "drop"), /--overlong applies to pack sft, dpo, grpo, not seq/);
    expectRefusal(
      run(["cmd/pack.ts", "seq", "--tokenizer", tok, "--seq-len", "1000000000", "--out", join(d, "o"), text]),
      /--seq-len: must be at most 1048576/,
    );
    expect(readdirSync(d)).toEqual([]);
  });
});

describe("data", () => {
  test("`tokenize encode | pack seq -` packs the ids, as the file would", () => {
    const d = fresh();
    const enc = run(["cmd/tokenize.ts", "encode", "--tokenizer", tok, "--lines", text]);
    const viaFile = join(d, "enc.jsonl");
    writeFileSync(viaFile, enc.out);
    const a = run(["cmd/pack.ts", "seq", "--tokenizer", tok, "--seq-len", "16", "--out", join(d, "a"), "-"], {
      stdin: enc.out,
    });
    const b = run(["cmd/pack.ts", "seq", "--tokenizer", tok, "--seq-len", "16", "--out", join(d, "b"), viaFile]);
    expect(a.code).toBe(0);
    expect(events(a.out)[0].rows).toEqual(events(b.out)[0].rows);
    expect(
      readFileSync(join(d, "a", "train-00000.safetensors")).equals(
        readFileSync(join(d, "b", "train-00000.safetensors")),
      ),
    ).toBe(true);
  });

  test("pack dpo leaves out pairs with nothing to prefer, and refuses when that is all of them", () => {
    const d = fresh();
    const rows = [
      { prompt: "1+1=", chosen: "2", rejected: "2" },
      { prompt: "1+2=", chosen: "3", rejected: "4" },
    ];
    writeFileSync(join(d, "p.jsonl"), rows.map((r) => JSON.stringify(r)).join("\n") + "\n");
    const r = run([
      "cmd/pack.ts",
      "dpo",
      "--tokenizer",
      tok,
      "--seq-len",
      "16",
      "--out",
      join(d, "dpo"),
      join(d, "p.jsonl"),
    ]);
    expect(r.code).toBe(0);
    expect(events(r.out)[0]).toMatchObject({ rows: { train: 1, val: 0 }, identical_pairs: 1 });
    writeFileSync(join(d, "same.jsonl"), JSON.stringify(rows[0]) + "\n");
    expectRefusal(
      run([
        "cmd/pack.ts",
        "dpo",
        "--tokenizer",
        tok,
        "--seq-len",
        "16",
        "--out",
        join(d, "same"),
        join(d, "same.jsonl"),
      ]),
      /chosen and rejected are the same tokens in every pair \(1, after truncation to 16\)/,
    );
  });
});

describe("resume", () => {
  test("from another directory it trains on the run's own data, and refuses a dataset that changed", () => {
    const d = fresh();
    // relative paths, given from d
    cpSync(seq, join(d, "seq"), { recursive: true });
    cpSync(model, join(d, "m.json"));
    expect(
      run(
        [
          join(root, "cmd", "pretrain.ts"),
          "--data",
          "seq",
          "--out",
          "run",
          "--model",
          "m.json",
          "--max-steps",
          "2",
          "--batch-size",
          "2",
        ],
        { cwd: d },
      ).code,
    ).toBe(0);
    const other = join(d, "other");
    mkdirSync(other);
    writeFileSync(join(other, "s.txt"), "the cat sat\n");
    expect(
      run(
        [join(root, "cmd", "pack.ts"), "seq", "--tokenizer", tok, "--seq-len", "2", "--out", "seq", "--lines", "s.txt"],
        { cwd: other },
      ).code,
    ).toBe(0);
    const r = run(
      [join(root, "cmd", "pretrain.ts"), "--resume", "../run/step_000002", "--out", "../run2", "--max-steps", "3"],
      { cwd: other },
    );
    expect(r.code).toBe(0);
    expect(JSON.parse(readFileSync(join(d, "run2", "step_000003", "meta.json"), "utf8")).data.dir).toBe(join(d, "seq"));
    // the run's dataset packed again differently
    expect(
      run([
        "cmd/pack.ts",
        "seq",
        "--tokenizer",
        tok,
        "--seq-len",
        "16",
        "--out",
        join(d, "seq"),
        "--overwrite",
        "--seed",
        "9",
        "--lines",
        text,
      ]).code,
    ).toBe(0);
    expectRefusal(
      run(["cmd/pretrain.ts", "--resume", join(d, "run", "step_000002"), "--out", join(d, "run3"), "--max-steps", "3"]),
      /seq is not the dataset this run trained on \(its manifest\.json changed\); give --data to continue on it anyway/,
    );
  });

  test("meta.json is held to its command, its keys and its counts", () => {
    const cases: [(m: any) => void, string[], RegExp][] = [
      [(m) => (m.strategy = "sft"), [], /--resume .*: a `sft` checkpoint; continue it with `sft`/],
      [(m) => (m.config.max_lrr = 1), [], /meta\.json: unknown key "max_lrr" \(did you mean "max_lr"\?\)/],
      [(m) => (m.config.max_lr = "NaN"), [], /meta\.json: config\.max_lr: expected a number/],
      [(m) => (m.step = 1e300), [], /meta\.json: "step" is 1e\+300: expected a whole number$/],
      [() => {}, ["--max-steps", "2"], /--max-steps 2: .* is at step 2 already; give more steps to continue/],
    ];
    for (const [edit, extra, re] of cases) {
      const d = fresh();
      const ck = join(d, "ck");
      cpSync(ckpt, ck, { recursive: true });
      const p = join(ck, "meta.json");
      const m = JSON.parse(readFileSync(p, "utf8"));
      edit(m);
      writeFileSync(p, JSON.stringify(m));
      const before = snapshot(d);
      expectRefusal(run(["cmd/pretrain.ts", "--resume", ck, "--out", join(d, "o"), ...extra]), re);
      expectUnchanged(before, d);
    }
  });
});

describe("weights", () => {
  test("a tensor the config has no place for, a tied head that differs, and bytes after the data are refused", () => {
    const d = fresh();
    const h = readHeader(join(ckpt, "model.safetensors"));
    const tensors = Object.fromEntries(h.tensors.map((t) => [t.name, readTensor(h, t.name)]));
    const write = (name: string, extra: Record<string, any>) => {
      const dir = join(d, name);
      mkdirSync(dir);
      cpSync(join(ckpt, "config.json"), join(dir, "config.json"));
      writeSafetensors(join(dir, "model.safetensors"), { ...tensors, ...extra });
      return dir;
    };
    const bias = write("bias", {
      "model.layers.0.self_attn.q_proj.bias": { dtype: "F32", shape: [32], data: new Float32Array(32) },
    });
    expectRefusal(
      run(["cmd/generate.ts", "--ckpt", bias, "--prompt-ids", "1"]),
      /tensor "model\.layers\.0\.self_attn\.q_proj\.bias" has no place in the model config\.json describes/,
    );
    const emb = tensors["model.embed_tokens.weight"]!;
    const head = write("head", {
      "lm_head.weight": {
        dtype: "F32",
        shape: emb.shape,
        data: new Float32Array((emb.data as Float32Array).length).fill(0.5),
      },
    });
    expectRefusal(
      run(["cmd/generate.ts", "--ckpt", head, "--prompt-ids", "1"]),
      /"lm_head\.weight" differs from "model\.embed_tokens\.weight", but config\.json says tie_word_embeddings: true/,
    );
    const same = write("same", { "lm_head.weight": emb });
    expect(run(["cmd/generate.ts", "--ckpt", same, "--prompt-ids", "1", "--max-new-tokens", "1"]).code).toBe(0);
    const tail = write("tail", {});
    writeFileSync(
      join(tail, "model.safetensors"),
      Buffer.concat([readFileSync(join(tail, "model.safetensors")), Buffer.from("garbage")]),
    );
    expectRefusal(run(["cmd/generate.ts", "--ckpt", tail, "--prompt-ids", "1"]), /7 bytes after the last tensor/);
  });

  test("ckpt-inspect reports a damaged file instead of passing it off as sound", () => {
    const d = fresh();
    const ck = join(d, "ck");
    cpSync(ckpt, ck, { recursive: true });
    const p = join(ck, "model.safetensors");
    const b = readFileSync(p);
    b[b.length - 8]! ^= 1;
    writeFileSync(p, b);
    const r = run(["cmd/ckpt-inspect.ts", ck, "--json"]);
    expect(r.code).toBe(0);
    expect(r.err).toMatch(
      /^bunlm: warning: .*model\.safetensors: its size or CRC-32 differs from what meta\.json recorded/,
    );
    expect(events(r.out).pop()).toMatchObject({ event: "summary", integrity: { mismatch: ["model.safetensors"] } });
  });
});

describe("user code and locks", () => {
  test("a huge --callback-timeout means no limit, not one millisecond", () => {
    const d = fresh();
    writeFileSync(join(d, "cb.ts"), "export default { async on_step_end() { await Bun.sleep(50); } };\n");
    const r = pretrain(
      "--out",
      join(d, "o"),
      "--model",
      model,
      "--max-steps",
      "2",
      "--callback",
      join(d, "cb.ts"),
      "--callback-timeout",
      "3000000",
    );
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
  });

  test("a module whose top level never settles is refused within its timeout", () => {
    const d = fresh();
    writeFileSync(join(d, "cb.ts"), "await new Promise(() => {});\nexport default { on_step_end() {} };\n");
    const r = pretrain(
      "--out",
      join(d, "o"),
      "--model",
      model,
      "--max-steps",
      "1",
      "--callback",
      join(d, "cb.ts"),
      "--callback-timeout",
      "1",
    );
    expectRefusal(r, /--callback .*cb\.ts: loading it did not answer within 1 s \(raise --callback-timeout/);
    expect(r.ms).toBeLessThan(15_000);
  });

  test("a lock naming a live process of another start (a reused pid) or this process's own pid is stale", () => {
    for (const pid of [1, "self"]) {
      const d = fresh();
      const out = join(d, "run");
      expect(pretrain("--out", out, "--model", model, "--max-steps", "1").code).toBe(0);
      const lock = {
        pid: pid === "self" ? 0 : pid,
        host: hostname(),
        command: "pretrain",
        started: "2024-01-01T00:00:00Z",
        boot: "not-this-boot",
      };
      writeFileSync(join(out, ".lock"), JSON.stringify(lock));
      const r = run(["cmd/pretrain.ts", "--resume", join(out, "step_000001"), "--out", out, "--max-steps", "2"]);
      expect(r.code).toBe(0);
      expect(r.err).toContain("taking over the lock");
    }
  });
});
