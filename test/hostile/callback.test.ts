// pretrain against --callback modules that misbehave, run as a user runs them: a hook that throws
// (named by file:line and hook), one that never settles (refused after --callback-timeout), modules
// that cannot be used. A throw or a SIGTERM after a finished step still leaves that step saved.
import { beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { bun, events, expectRefusal, root, run, seqData, tmp } from "./_helpers.ts";

const PRETRAIN = "cmd/pretrain.ts";
let dir = "",
  data = "",
  model = "";
let runs = 0;

beforeAll(() => {
  dir = tmp("hostile-callback");
  const d = seqData(dir);
  data = d.data;
  model = d.model;
});

const outDir = () => join(dir, `run${++runs}`);
const args = (out: string, ...extra: string[]) => [
  PRETRAIN,
  "--data",
  data,
  "--out",
  out,
  "--model",
  model,
  "--max-steps",
  "4",
  "--batch-size",
  "2",
  ...extra,
];
const steps = (out: string) =>
  existsSync(out)
    ? readdirSync(out)
        .filter((f) => /^step_\d+$/.test(f))
        .sort()
    : [];

const write = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};

const THROWS = `export default class {
  on_step_end(_t: unknown, m: { step: number }) {
    if (m.step === 2) throw new Error("wandb is down");
  }
}
`;

describe("pretrain --callback", () => {
  test("a hook that throws is named by file:line and hook", () => {
    const p = write("throws.ts", THROWS);
    const r = run(args(outDir(), "--callback", p), { timeoutMs: 60_000 });
    expectRefusal(r, new RegExp(`^bunlm: error: --callback ${p}:3: on_step_end threw: wandb is down`));
  });

  test("a hook that never settles is refused after --callback-timeout", () => {
    const p = write(
      "hangs.ts",
      `export default {\n  on_train_begin() {\n    return new Promise<void>(() => {});\n  },\n};\n`,
    );
    const r = run(args(outDir(), "--callback", p, "--callback-timeout", "1"), { timeoutMs: 60_000 });
    expectRefusal(
      r,
      new RegExp(
        `^bunlm: error: --callback ${p}: on_train_begin did not answer within 1 s \\(raise --callback-timeout, 0 for no limit\\)`,
      ),
    );
    expect(r.ms).toBeLessThan(15_000);
  });

  test("modules that cannot be used name the file", () => {
    const syntax = write("syntax.ts", `export default {\n  on_step_end( {}\n};\n`);
    expectRefusal(
      run(args(outDir(), "--callback", syntax)),
      new RegExp(`^bunlm: error: --callback ${syntax}:\\d+: cannot load \\(`),
    );
    const typo = write("typo.ts", `export default { onStepEnd() {} };\n`);
    expectRefusal(
      run(args(outDir(), "--callback", typo)),
      new RegExp(`^bunlm: error: --callback ${typo}: defines none of the hooks on_train_begin, `),
    );
    const missing = join(dir, "absent.ts");
    expectRefusal(
      run(args(outDir(), "--callback", missing)),
      new RegExp(`^bunlm: error: --callback ${missing}: no such file`),
    );
  });

  // Depends on the trainer saving the last finished step before an error ends the run.
  test("a hook that throws after step 2 still leaves step 2 saved", () => {
    const p = write("throws_ckpt.ts", THROWS);
    const out = outDir();
    const r = run(args(out, "--callback", p), { timeoutMs: 60_000 });
    expectRefusal(r, new RegExp(`--callback ${p}:3: on_step_end threw: wandb is down`));
    expect(steps(out)).toEqual(["step_000002"]);
    expect(existsSync(join(out, "step_000002", "model.safetensors"))).toBe(true);
  });

  // Depends on cli.ts aborting Trainer.stop on the first signal.
  test("SIGTERM while a hook hangs: exits 143 within seconds with the finished step saved", async () => {
    const p = write(
      "hangs_step2.ts",
      `export default {\n  on_step_end(_t: unknown, m: { step: number }) {\n    if (m.step === 2) return new Promise<void>(() => {});\n  },\n};\n`,
    );
    const out = outDir();
    const proc = Bun.spawn([bun, ...args(out, "--callback", p, "--callback-timeout", "0")], {
      cwd: root,
      stdout: "pipe",
      stderr: "pipe",
    });
    const kill = setTimeout(() => proc.kill("SIGKILL"), 60_000);
    const reader = proc.stdout.getReader();
    const dec = new TextDecoder();
    let text = "";
    // the step line is printed by the metrics callback, which runs before the user's
    while (!text.includes('"step":2')) {
      const { value, done } = await reader.read();
      if (done) break;
      text += dec.decode(value, { stream: true });
    }
    await Bun.sleep(200);
    const t0 = performance.now();
    proc.kill("SIGTERM");
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += dec.decode(value, { stream: true });
    }
    const code = await proc.exited;
    clearTimeout(kill);
    const err = await new Response(proc.stderr).text();
    expect(err).not.toMatch(/^\s+at /m);
    expect(code).toBe(143);
    expect(performance.now() - t0).toBeLessThan(5000);
    expect(
      events(text)
        .filter((e) => e.event === "checkpoint")
        .map((e) => e.step),
    ).toEqual([2]);
    expect(steps(out)).toEqual(["step_000002"]);
  }, 60_000);
});
