// A command never deletes or overwrites what it did not write: --out that holds other files (or is a
// file, or is the tokenizer's directory) is refused; an earlier output of the same command needs
// --overwrite; a run directory is locked while a run uses it; retention goes by the step in meta.json
// and never removes the checkpoint just written; leftovers of killed processes are cleaned up;
// a resumed run does not list its steps twice.
import { beforeAll, describe, expect, test } from "bun:test";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  writeFileSync,
  cpSync,
} from "node:fs";
import { join } from "node:path";
import { bun, events, expectRefusal, expectUnchanged, root, run, seqData, snapshot, tmp, caseDir } from "./_helpers.ts";

let base: string, tok: string, seq: string, model: string;
const text = join(root, "examples", "data", "bilingual.txt");
// a process id no process has (Linux pids stay below 2^22)
const DEAD = "99999999";

beforeAll(() => {
  base = tmp("hostile-out");
  ({ tok, data: seq, model } = seqData(base));
});

const fresh = () => caseDir(base);
const pack = (out: string, ...extra: string[]) =>
  run(["cmd/pack.ts", "seq", "--tokenizer", tok, "--seq-len", "16", "--out", out, "--lines", ...extra, text]);
const pretrain = (out: string, ...extra: string[]) =>
  run(["cmd/pretrain.ts", "--data", seq, "--out", out, "--model", model, "--batch-size", "2", ...extra]);
const steps = (out: string) =>
  events(out)
    .filter((e) => e.event === "step")
    .map((e) => e.step);

describe("pack --out", () => {
  test("a directory holding other files is refused, its files untouched", () => {
    const d = fresh();
    const out = join(d, "out");
    mkdirSync(out);
    writeFileSync(join(out, "thesis.tex"), "years of work");
    const before = snapshot(d);
    expectRefusal(
      pack(out),
      /--out: .*out holds files that `pack` did not write \(thesis\.tex\); give a new or empty directory/,
    );
    expectUnchanged(before, d);
    expect(readdirSync(d)).toEqual(["out"]); // no temporary directory left beside it
  });

  test("the tokenizer's own directory is refused", () => {
    const before = snapshot(tok);
    expectRefusal(pack(tok), /holds files that `pack` did not write \(tokenizer\.json, tokenizer_config\.json\)/);
    expectUnchanged(before, tok);
  });

  test("a regular file is refused", () => {
    const d = fresh();
    writeFileSync(join(d, "out"), "not a directory");
    const before = snapshot(d);
    expectRefusal(pack(join(d, "out")), /--out: .*out is a file, not a directory/);
    expectUnchanged(before, d);
  });

  test("an earlier pack output needs --overwrite; with it the dataset is replaced whole", () => {
    const d = fresh();
    const out = join(d, "out");
    expect(pack(out).code).toBe(0);
    const before = snapshot(d);
    expectRefusal(pack(out, "--seed", "7"), /holds an earlier `pack` output; add --overwrite to replace it/);
    expectUnchanged(before, d);
    const r = pack(out, "--seed", "7", "--overwrite");
    expect(r.code).toBe(0);
    expect(JSON.parse(readFileSync(join(out, "manifest.json"), "utf8")).seed).toBe(7);
    expect(readdirSync(d)).toEqual(["out"]);
  });

  test("an earlier pack output with a user's file in it is refused even with --overwrite", () => {
    const d = fresh();
    const out = join(d, "out");
    expect(pack(out).code).toBe(0);
    writeFileSync(join(out, "notes.md"), "mine");
    const before = snapshot(d);
    expectRefusal(
      pack(out, "--overwrite"),
      /holds an earlier `pack` output and files that `pack` did not write \(notes\.md\); move them out first/,
    );
    expectUnchanged(before, d);
  });

  test("leftovers of a killed pack are removed, and a dataset it had moved aside is put back", () => {
    const d = fresh();
    const out = join(d, "out");
    expect(pack(out).code).toBe(0);
    // killed between its two renames: the old dataset sits at OUT.bunlm-old-PID, OUT is gone
    renameSync(out, `${out}.bunlm-old-${DEAD}`);
    mkdirSync(`${out}.bunlm-tmp-${DEAD}`);
    writeFileSync(join(`${out}.bunlm-tmp-${DEAD}`, "rows.bin"), "half");
    const r = pack(out, "--overwrite");
    expect(r.code).toBe(0);
    expect(r.err).toContain("put back the dataset");
    expect(readdirSync(d).sort()).toEqual(["out"]);
  });
});

describe("training --out", () => {
  test("a second run into an earlier run needs --overwrite; with fewer steps its checkpoint stays and latest resolves", () => {
    const d = fresh();
    const out = join(d, "run");
    expect(pretrain(out, "--max-steps", "6", "--ckpt-interval", "2", "--keep", "2").code).toBe(0);
    const before = snapshot(d);
    expectRefusal(
      pretrain(out, "--max-steps", "2"),
      /--out: .*run holds an earlier `pretrain` output; add --overwrite to replace it/,
    );
    expectUnchanged(before, d);
    const r = pretrain(out, "--max-steps", "2", "--keep", "1", "--overwrite");
    expect(r.code).toBe(0);
    expect(readdirSync(out).filter((f) => f.startsWith("step_"))).toEqual(["step_000002"]);
    expect(readlinkSync(join(out, "latest"))).toBe("step_000002");
    expect(existsSync(join(out, "latest", "model.safetensors"))).toBe(true);
    expect(steps(readFileSync(join(out, "metrics.jsonl"), "utf8"))).toEqual([1, 2]);
  });

  test("--overwrite leaves files that are not the run's", () => {
    const d = fresh();
    const out = join(d, "run");
    expect(pretrain(out, "--max-steps", "1").code).toBe(0);
    writeFileSync(join(out, "notes.md"), "mine");
    expect(pretrain(out, "--max-steps", "1", "--overwrite").code).toBe(0);
    expect(readFileSync(join(out, "notes.md"), "utf8")).toBe("mine");
  });

  test("a directory of other files, or another command's run, is refused", () => {
    const d = fresh();
    const other = join(d, "other");
    mkdirSync(other);
    writeFileSync(join(other, "a.txt"), "x");
    const run1 = join(d, "pt");
    expect(pretrain(run1, "--max-steps", "1").code).toBe(0);
    const before = snapshot(d);
    expectRefusal(
      pretrain(other, "--max-steps", "1", "--overwrite"),
      /holds files that `pretrain` did not write \(a\.txt\)/,
    );
    expectRefusal(
      run(["cmd/sft.ts", "--data", seq, "--out", run1, "--init", join(run1, "latest"), "--overwrite"]),
      /holds a `pretrain` run; `sft` writes its own run directory/,
    );
    expectRefusal(pretrain(join(other, "a.txt")), /is a file, not a directory/);
    expectUnchanged(before, d);
  });

  test("--overwrite never clears the checkpoint the run starts from", () => {
    const d = fresh();
    const out = join(d, "run");
    expect(pretrain(out, "--max-steps", "1").code).toBe(0);
    const before = snapshot(d);
    expectRefusal(
      run(["cmd/pretrain.ts", "--data", seq, "--out", out, "--init", join(out, "step_000001"), "--overwrite"]),
      /--init .*step_000001 lies inside --out .*, which --overwrite would clear/,
    );
    expectUnchanged(before, d);
  });

  test("a second run on a directory in use is refused; the first is unaffected", async () => {
    const d = fresh();
    const out = join(d, "run");
    const p = Bun.spawn(
      [
        bun,
        "cmd/pretrain.ts",
        "--data",
        seq,
        "--out",
        out,
        "--model",
        model,
        "--batch-size",
        "2",
        "--max-steps",
        "100000",
      ],
      { cwd: root, stdout: "pipe", stderr: "pipe" },
    );
    const reader = p.stdout.getReader();
    let seen = "";
    while (!seen.includes('"event":"step"')) seen += new TextDecoder().decode((await reader.read()).value);
    const r = pretrain(out, "--max-steps", "1", "--overwrite");
    expectRefusal(
      r,
      new RegExp(
        `--out: .*run is in use by another run \\(process ${p.pid}, pretrain, since .*\\); wait for it to end or give another directory`,
      ),
    );
    p.kill("SIGTERM");
    expect(await p.exited).toBe(143);
    expect(existsSync(join(out, ".lock"))).toBe(false); // released at exit
    const ckpts = readdirSync(out).filter((f) => f.startsWith("step_"));
    expect(ckpts.length).toBe(1);
    expect(JSON.parse(readFileSync(join(out, ckpts[0]!, "meta.json"), "utf8")).reason).toBe("SIGTERM");
  });

  test("a dead run's lock is taken over with a note; its temporary checkpoint is removed", () => {
    const d = fresh();
    const out = join(d, "run");
    expect(pretrain(out, "--max-steps", "2").code).toBe(0);
    writeFileSync(
      join(out, ".lock"),
      JSON.stringify({
        pid: Number(DEAD),
        host: require("node:os").hostname(),
        command: "pretrain",
        started: "2026-01-01T00:00:00Z",
      }),
    );
    mkdirSync(join(out, `.step_000003.bunlm-tmp-${DEAD}`));
    const r = run(["cmd/pretrain.ts", "--resume", join(out, "step_000002"), "--out", out, "--max-steps", "3"]);
    expect(r.code).toBe(0);
    expect(r.err).toContain(`taking over the lock of process ${DEAD}`);
    expect(r.err).toContain(`.step_000003.bunlm-tmp-${DEAD}`);
    expect(readdirSync(out).filter((f) => f.startsWith("."))).toEqual([]);
  });

  test("resuming in place from an earlier checkpoint: metrics.jsonl lists each step once; retention keeps the checkpoint just written", () => {
    const d = fresh();
    const out = join(d, "run");
    expect(pretrain(out, "--max-steps", "6", "--ckpt-interval", "2", "--keep", "3").code).toBe(0);
    const r = run([
      "cmd/pretrain.ts",
      "--resume",
      join(out, "step_000002"),
      "--out",
      out,
      "--max-steps",
      "3",
      "--keep",
      "1",
    ]);
    expect(r.code).toBe(0);
    expect(steps(readFileSync(join(out, "metrics.jsonl"), "utf8"))).toEqual([1, 2, 3]);
    // by step, step_000006 (left from before) is the newest; the run's own step_000003 is never pruned
    const left = readdirSync(out)
      .filter((f) => f.startsWith("step_"))
      .sort();
    expect(left).toContain("step_000003");
    expect(readlinkSync(join(out, "latest"))).toBe("step_000003");
  });

  test("retention orders checkpoints by their meta.json step, not their names", () => {
    const d = fresh();
    const out = join(d, "run");
    expect(pretrain(out, "--max-steps", "4", "--ckpt-interval", "2", "--keep", "3").code).toBe(0);
    // a renamed copy: its name sorts last, its step (2) is the oldest
    cpSync(join(out, "step_000002"), join(out, "step_000099"), { recursive: true });
    const r = run([
      "cmd/pretrain.ts",
      "--resume",
      join(out, "step_000004"),
      "--out",
      out,
      "--max-steps",
      "5",
      "--keep",
      "2",
    ]);
    expect(r.code).toBe(0);
    expect(
      readdirSync(out)
        .filter((f) => f.startsWith("step_"))
        .sort(),
    ).toEqual(["step_000004", "step_000005"]);
  });
});

describe("plot --out", () => {
  test("a file plot did not write is refused; another picture format is refused; an earlier plot needs --overwrite", () => {
    const d = fresh();
    const runDir = join(d, "run");
    expect(pretrain(runDir, "--max-steps", "2").code).toBe(0);
    const metrics = join(runDir, "metrics.jsonl");
    writeFileSync(join(d, "paper.svg"), "<svg>my figure</svg>");
    const before = snapshot(d);
    expectRefusal(
      run(["cmd/plot.ts", metrics, "--out", join(d, "paper.svg")]),
      /paper\.svg exists and was not written by `plot`; give a new file name/,
    );
    expectRefusal(
      run(["cmd/plot.ts", metrics, "--out", join(d, "loss.jpg")]),
      /loss\.jpg: plot draws SVG or PNG; give a name ending in \.svg or \.png/,
    );
    expectUnchanged(before, d);
    expect(run(["cmd/plot.ts", metrics, "--out", join(d, "loss.svg")]).code).toBe(0);
    expectRefusal(
      run(["cmd/plot.ts", metrics, "--out", join(d, "loss.svg")]),
      /holds an earlier `plot` output; add --overwrite/,
    );
    expect(run(["cmd/plot.ts", metrics, "--out", join(d, "loss.svg"), "--overwrite"]).code).toBe(0);
  });
});
