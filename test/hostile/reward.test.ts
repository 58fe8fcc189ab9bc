// grpo against rewards that misbehave, run as a user runs them: a reward command that never answers,
// answers twice, speaks the old bare-number protocol or exits; a reward module that never settles,
// throws, or does not load. Each is refused in one line that names the command or file:line, within
// seconds, and leaves no process of the command's group running. A SIGTERM while a reward hangs
// stops the run within seconds with the last finished step saved.
import { beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { sh } from "../train/helpers.ts";
import { bun, events, expectRefusal, root, run, seqData, tmp } from "./_helpers.ts";
import { alive } from "../lib/procs.ts";

const GRPO = "cmd/grpo.ts";
let dir = "",
  data = "",
  model = "";
let runs = 0;

beforeAll(() => {
  dir = tmp("hostile-reward");
  const d = seqData(dir);
  model = d.model;
  const prompts = join(dir, "prompts.jsonl");
  writeFileSync(
    prompts,
    Array.from({ length: 8 }, (_, i) => JSON.stringify({ prompt: `the cat ${i}`, answer: String(i) })).join("\n") +
      "\n",
  );
  data = join(dir, "grpo");
  const r = sh(["cmd/pack.ts", "grpo", "--tokenizer", d.tok, "--seq-len", "8", "--out", data, prompts]);
  if (r.code !== 0) throw new Error(r.err);
});

/** 4 reward requests per step: 2 prompts × 2 responses, of at most 4 tokens */
const grpoArgs = (...extra: string[]) => [
  GRPO,
  "--data",
  data,
  "--out",
  join(dir, `run${++runs}`),
  "--model",
  model,
  "--max-steps",
  "3",
  "--batch-size",
  "2",
  "--group-size",
  "2",
  "--max-new-tokens",
  "4",
  ...extra,
];

/** The pids a command wrote (`echo $$ $! > FILE`) are gone within a second. */
async function expectGone(pidfile: string): Promise<void> {
  expect(existsSync(pidfile)).toBe(true);
  const pids = readFileSync(pidfile, "utf8").trim().split(/\s+/).map(Number);
  const t0 = Date.now();
  while (pids.some(alive) && Date.now() - t0 < 1000) await Bun.sleep(20);
  expect(pids.filter(alive)).toEqual([]);
}

const write = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};

// `sh` pieces: the request's id from `{"id":K,...}` in $l, a reply for it, a loop over requests
// biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion, for sh -c
const ID = "id=${l#*:}; id=${id%%,*}";
const REPLY = 'echo "{\\"id\\":$id,\\"reward\\":1}"';
const loop = (body: string) => `while read -r l; do ${ID}; ${body}; done`;

describe("grpo --reward-cmd", () => {
  test("a command that never answers: refused after --reward-timeout, and its group is killed", async () => {
    const pidfile = join(dir, "hang.pid");
    const cmd = `sleep 1000 & echo $$ $! > ${pidfile}; cat > /dev/null`;
    const r = run(grpoArgs("--reward-cmd", cmd, "--reward-timeout", "2"), { timeoutMs: 30_000 });
    expectRefusal(
      r,
      /^bunlm: error: --reward-cmd '.*' did not answer within 2 s \(raise --reward-timeout, 0 for no limit\)/,
    );
    expect(r.ms).toBeLessThan(15_000);
    await expectGone(pidfile);
  });

  test("two reply lines per request are refused, not shifted onto the next response", async () => {
    const pidfile = join(dir, "twice.pid");
    const r = run(grpoArgs("--reward-cmd", `echo $$ > ${pidfile}; ${loop(`${REPLY}; ${REPLY}`)}`), {
      timeoutMs: 30_000,
    });
    expectRefusal(r, /^bunlm: error: --reward-cmd '.*': answered request 1 twice \(one reply line per request\)/);
    await expectGone(pidfile);
  });

  test("bare numbers (the old protocol) are refused with the reply format to use", () => {
    const r = run(grpoArgs("--reward-cmd", "while read -r l; do echo 1; done"), { timeoutMs: 30_000 });
    expectRefusal(r, /: printed "1", not a reply; answer each request with one line \{"id": K, "reward": X\}/);
  });

  test("a command that exits before answering is named with its exit code", () => {
    const r = run(grpoArgs("--reward-cmd", "read -r l; exit 3"), { timeoutMs: 30_000 });
    expectRefusal(r, /^bunlm: error: --reward-cmd 'read -r l; exit 3': exited with code 3 before answering request 1/);
  });

  test("a command whose replies are out of step (wrong id) is refused", () => {
    const r = run(grpoArgs("--reward-cmd", loop(`echo "{\\"id\\":$((id + 1)),\\"reward\\":1}"`)), {
      timeoutMs: 30_000,
    });
    expectRefusal(r, /answered request 2, which was not sent yet/);
  });

  test("a well-behaved command trains, and nothing of it outlives the run", async () => {
    const pidfile = join(dir, "ok.pid");
    // a background child that would hold on forever unless the group is killed at the end
    const r = run(grpoArgs("--reward-cmd", `sleep 1000 & echo $$ $! > ${pidfile}; ${loop(REPLY)}`), {
      timeoutMs: 60_000,
    });
    if (r.code !== 0) throw new Error(r.err);
    expect(events(r.out).filter((e) => e.event === "step").length).toBe(3);
    await expectGone(pidfile);
  });
});

describe("grpo --reward module", () => {
  test("a reward that never settles is refused after --reward-timeout", () => {
    const p = write("hang.ts", `export function reward(): Promise<number> {\n  return new Promise(() => {});\n}\n`);
    const r = run(grpoArgs("--reward", p, "--reward-timeout", "1"), { timeoutMs: 30_000 });
    expectRefusal(
      r,
      new RegExp(`^bunlm: error: --reward ${p} did not answer within 1 s \\(raise --reward-timeout, 0 for no limit\\)`),
    );
    expect(r.ms).toBeLessThan(15_000);
  });

  test("a reward that throws is named by file:line", () => {
    const p = write(
      "throws.ts",
      `export function reward(_p: string, _r: string, row: { answer?: string }) {
  const n = Number(row.answer);
  if (n >= 0) throw new Error("scoring service unreachable");
  return 0;
}
`,
    );
    const r = run(grpoArgs("--reward", p), { timeoutMs: 30_000 });
    expectRefusal(r, new RegExp(`^bunlm: error: --reward ${p}:3: reward threw: scoring service unreachable`));
  });

  test("a reward that returns a non-number is named with its line", () => {
    const p = write("nan.ts", `\nexport const reward = () => "high";\n`);
    const r = run(grpoArgs("--reward", p), { timeoutMs: 30_000 });
    expectRefusal(r, new RegExp(`^bunlm: error: --reward ${p}:2: reward returned "high", not a finite number`));
  });

  test("a module that does not load is named by file:line", () => {
    const p = write("syntax.ts", `export function reward( {\n  return 1\n}\n`);
    const r = run(grpoArgs("--reward", p), { timeoutMs: 30_000 });
    expectRefusal(r, new RegExp(`^bunlm: error: --reward ${p}:2: cannot load \\(`));
  });
});

/**
 * Run grpo, wait for the first step line, send SIGTERM while the reward hangs in step 2, and return
 * the exit code, stdout, stderr and how long it took to stop after the signal.
 */
async function sigtermDuringStep2(
  extra: string[],
): Promise<{ code: number; out: string; err: string; stopMs: number }> {
  const p = Bun.spawn([bun, ...grpoArgs(...extra, "--reward-timeout", "0")], {
    cwd: root,
    stdout: "pipe",
    stderr: "pipe",
  });
  const kill = setTimeout(() => p.kill("SIGKILL"), 60_000);
  const reader = p.stdout.getReader();
  const dec = new TextDecoder();
  let out = "";
  while (!out.includes('"event":"step"')) {
    const { value, done } = await reader.read();
    if (done) break;
    out += dec.decode(value, { stream: true });
  }
  await Bun.sleep(300); // well inside step 2's hanging reward
  const t0 = performance.now();
  p.kill("SIGTERM");
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    out += dec.decode(value, { stream: true });
  }
  const code = await p.exited;
  clearTimeout(kill);
  return { code, out, err: await new Response(p.stderr).text(), stopMs: performance.now() - t0 };
}

// These depend on the trainer's stop signal (cmd/_train.ts aborts Trainer.stop on the first
// signal; the loop ends on StopRequested and saves the last finished step).
describe("grpo: SIGTERM while the reward hangs", () => {
  const expectStoppedAfterStep1 = (r: { code: number; out: string; err: string; stopMs: number }) => {
    expect(r.err).not.toMatch(/^\s+at /m);
    expect(r.code).toBe(143);
    expect(r.stopMs).toBeLessThan(5000);
    const ck = events(r.out).filter((e) => e.event === "checkpoint");
    expect(ck.map((e) => e.step)).toEqual([1]);
    expect(existsSync(join(ck[0].path, "model.safetensors"))).toBe(true);
  };

  test("a reward command: exits 143 within seconds, step 1 saved, its group gone", async () => {
    const pidfile = join(dir, "sigterm.pid");
    // answers step 1's four requests, then hangs
    const cmd = `n=0; while read -r l; do n=$((n + 1)); if [ $n -gt 4 ]; then sleep 1000 & echo $$ $! > ${pidfile}; cat > /dev/null; fi; ${ID}; ${REPLY}; done`;
    const r = await sigtermDuringStep2(["--reward-cmd", cmd]);
    expectStoppedAfterStep1(r);
    await expectGone(pidfile);
  }, 60_000);

  test("a reward module: exits 143 within seconds, step 1 saved", async () => {
    const p = write(
      "hang_later.ts",
      `let n = 0;\nexport function reward() {\n  return ++n <= 4 ? 1 : new Promise<number>(() => {});\n}\n`,
    );
    expectStoppedAfterStep1(await sigtermDuringStep2(["--reward", p]));
  }, 60_000);
});
