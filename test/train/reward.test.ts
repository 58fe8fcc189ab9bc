// User code the trainer waits on: withDeadline's three outcomes, the reward command's id protocol
// (every way a command can fall out of step), its process group leaving nothing behind, and reward
// and callback modules named by file:line when they fail.
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { InputError } from "../../lib/base/errors.ts";
import { StopRequested, withDeadline } from "../../lib/train/deadline.ts";
import { rewardFromCommand, rewardFromModule } from "../../lib/train/reward.ts";
import { loadUserCallback } from "../../lib/train/user_callback.ts";
import { bun, root, tmp } from "./helpers.ts";
import { alive } from "../lib/procs.ts";

const dir = tmp("reward");

async function until(f: () => boolean, ms = 3000): Promise<void> {
  const t0 = Date.now();
  while (!f()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms`);
    await Bun.sleep(20);
  }
}

/** The error a promise rejects with (fails the test when it resolves). */
async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected a rejection");
}

// `sh` pieces: the request's id from `{"id":K,...}` in $l, and a reply for it
// biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion, for sh -c
const ID = "id=${l#*:}; id=${id%%,*}";
const reply = (r = "1") => `echo "{\\"id\\":$id,\\"reward\\":${r}}"`;
const loop = (body: string) => `while read -r l; do ${ID}; ${body}; done`;
const o = { timeoutMs: 5000 };

describe("withDeadline", () => {
  test("passes the work's value and error through", async () => {
    expect(await withDeadline(Promise.resolve(3), { ms: 1000, what: "x", flag: "--f" })).toBe(3);
    expect(await withDeadline(4, { ms: 0, what: "x", flag: "--f" })).toBe(4);
    const e = await rejection(withDeadline(Promise.reject(new Error("inner")), { ms: 1000, what: "x", flag: "--f" }));
    expect(e.message).toBe("inner");
  });

  test("a deadline: InputError naming what and the flag", async () => {
    const t0 = performance.now();
    const e = await rejection(
      withDeadline(new Promise(() => {}), { ms: 100, what: "--reward ./r.ts", flag: "--reward-timeout" }),
    );
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(e).toBeInstanceOf(InputError);
    expect(e.message).toBe("--reward ./r.ts did not answer within 0.1 s (raise --reward-timeout, 0 for no limit)");
  });

  test("the stop signal ends the wait at once, with its reason; an aborted one before it starts", async () => {
    const ac = new AbortController();
    const p = withDeadline(new Promise(() => {}), { ms: 0, what: "x", flag: "--f", signal: ac.signal });
    setTimeout(() => ac.abort("SIGTERM"), 20);
    const e = await rejection(p);
    expect(e).toBeInstanceOf(StopRequested);
    expect((e as StopRequested).signal).toBe("SIGTERM");
    const e2 = await rejection(withDeadline(Promise.resolve(1), { ms: 0, what: "x", flag: "--f", signal: ac.signal }));
    expect((e2 as StopRequested).signal).toBe("SIGTERM");
  });

  test("settled, it keeps no timer: a process using it exits at once", () => {
    const script = join(dir, "settle.ts");
    writeFileSync(
      script,
      `import { withDeadline } from ${JSON.stringify(join(root, "lib/train/deadline.ts"))};
const ac = new AbortController();
await withDeadline(Promise.resolve(1), { ms: 600_000, what: "x", flag: "--f", signal: ac.signal });
await withDeadline(Promise.reject(new Error("no")), { ms: 600_000, what: "x", flag: "--f" }).catch(() => {});
`,
    );
    const t0 = performance.now();
    const r = Bun.spawnSync([bun, script], { timeout: 20_000 });
    expect(r.exitCode).toBe(0);
    expect(performance.now() - t0).toBeLessThan(10_000);
  });
});

describe("--reward-cmd protocol", () => {
  test("a well-behaved command: rewards in order, ids 1, 2, 3, the row passed through", async () => {
    const log = join(dir, "requests.jsonl");
    const c = rewardFromCommand(`tee ${log} | ${loop(reply("$id.5"))}`, o);
    expect(await c.fn("p", "r1", { a: 1 })).toBe(1.5);
    expect(await Promise.all([c.fn("p", "r2", {}), c.fn("p", "r3", {})])).toEqual([2.5, 3.5]);
    await c.close();
    const sent = readFileSync(log, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(sent).toEqual([
      { id: 1, prompt: "p", response: "r1", row: { a: 1 } },
      { id: 2, prompt: "p", response: "r2", row: {} },
      { id: 3, prompt: "p", response: "r3", row: {} },
    ]);
  });

  test("an extra line (two replies per request) is refused, naming the command", async () => {
    const cmd = loop(`${reply()}; ${reply()}`);
    const c = rewardFromCommand(cmd, o);
    expect(await c.fn("p", "r", {})).toBe(1);
    // the duplicate may arrive before or after the next request is sent: refused either way
    const e = await rejection(c.fn("p", "r", {}));
    expect(e).toBeInstanceOf(InputError);
    expect(e.message).toBe(`--reward-cmd '${cmd}': answered request 1 twice (one reply line per request)`);
    await rejection(c.fn("p", "r", {})); // and stays refused
    await c.close();
  });

  test("a stray debug print, and the old bare-number replies, are refused with the format to use", async () => {
    for (const body of [`echo "scoring $id"; ${reply()}`, "echo 0.5"]) {
      const c = rewardFromCommand(loop(body), o);
      const e = await rejection(c.fn("p", "r", {}));
      expect(e.message).toMatch(
        /: printed ".*", not a reply; answer each request with one line \{"id": K, "reward": X\}/,
      );
      await c.close();
    }
  });

  test("a missing line: the timeout names the command and the flag, and kills it", async () => {
    // answers every request but the second
    const c = rewardFromCommand(loop(`[ "$id" = 2 ] || ${reply()}`), { timeoutMs: 300 });
    expect(await c.fn("p", "r", {})).toBe(1);
    const t0 = performance.now();
    const e = await rejection(c.fn("p", "r", {}));
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(e.message).toMatch(
      /^--reward-cmd '.*' did not answer within 0\.3 s \(raise --reward-timeout, 0 for no limit\)$/,
    );
    await until(() => !alive(c.pgid));
    await c.close();
  });

  test("a wrong id, a reply before its request, a non-number reward", async () => {
    const cases: [string, RegExp][] = [
      [loop(`echo "{\\"id\\":0,\\"reward\\":1}"`), /answered request 0 twice/],
      [loop(`echo "{\\"id\\":$((id + 1)),\\"reward\\":1}"`), /answered request 2, which was not sent yet \(1 so far/],
      [loop(`echo "{\\"id\\":$id,\\"reward\\":\\"high\\"}"`), /request 1: "reward" is "high", not a finite number/],
      [loop(`echo "{\\"id\\":$id}"`), /request 1: "reward" is undefined, not a finite number/],
      [loop(`echo "{\\"id\\":$id,\\"reward\\":null}"`), /request 1: "reward" is null, not a finite number/],
    ];
    for (const [cmd, want] of cases) {
      const c = rewardFromCommand(cmd, o);
      const e = await rejection(c.fn("p", "r", {}));
      expect(e).toBeInstanceOf(InputError);
      expect(e.message).toMatch(want);
      expect(e.message.startsWith(`--reward-cmd '${cmd}': `)).toBe(true);
      await c.close();
    }
  });

  test("EOF: a command that exits, or is not found, before answering", async () => {
    let c = rewardFromCommand("read -r l; exit 3", o);
    expect((await rejection(c.fn("p", "r", {}))).message).toBe(
      `--reward-cmd 'read -r l; exit 3': exited with code 3 before answering request 1`,
    );
    await c.close();
    c = rewardFromCommand(`read -r l; ${ID}; ${reply()}`, o);
    expect(await c.fn("p", "r", {})).toBe(1);
    expect((await rejection(c.fn("p", "r", {}))).message).toMatch(
      /exited with code 0 (before answering request 2|after 1 replies)/,
    );
    await c.close();
    c = rewardFromCommand("exec 2>/dev/null; bunlm-no-such-command", o);
    expect((await rejection(c.fn("p", "r", {}))).message).toMatch(
      /exited with code 127 \(command not found\) before answering request 1/,
    );
    await c.close();
  });

  test("a last reply without its trailing newline still counts", async () => {
    const c = rewardFromCommand(`read -r l; ${ID}; printf '{"id":%s,"reward":7}' $id`, o);
    expect(await c.fn("p", "r", {})).toBe(7);
    await c.close();
  });

  test("the stop signal ends a wait at once with StopRequested, and kills the command", async () => {
    const ac = new AbortController();
    const c = rewardFromCommand("cat > /dev/null", { timeoutMs: 0, signal: ac.signal });
    setTimeout(() => ac.abort("SIGINT"), 50);
    const t0 = performance.now();
    const e = await rejection(c.fn("p", "r", {}));
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(e).toBeInstanceOf(StopRequested);
    expect((e as StopRequested).signal).toBe("SIGINT");
    await until(() => !alive(c.pgid));
    await c.close();
  });
});

describe("--reward-cmd process group", () => {
  /** a command that starts `sleep 1000` in the background and writes the shell's and sleep's pids */
  const sleeper = (pidfile: string, then: string) => `sleep 1000 & echo $$ $! > ${pidfile}; ${then}`;
  const pids = (pidfile: string) => readFileSync(pidfile, "utf8").trim().split(" ").map(Number);

  test("close(): the shell and what it started are gone, though it ignores EOF and SIGTERM", async () => {
    const pidfile = join(dir, "close.pid");
    const c = rewardFromCommand(sleeper(pidfile, `trap '' TERM; cat > /dev/null; while :; do sleep 1; done`), o);
    await until(() => existsSync(pidfile) && pids(pidfile).length === 2);
    const [shell, sleep] = pids(pidfile);
    expect(alive(sleep!)).toBe(true);
    const t0 = performance.now();
    await c.close();
    expect(performance.now() - t0).toBeLessThan(3000);
    await until(() => !alive(shell!) && !alive(sleep!), 1000);
  });

  test("close() of a command that exits on EOF is quick, and its background children go too", async () => {
    const pidfile = join(dir, "eof.pid");
    const c = rewardFromCommand(sleeper(pidfile, loop(reply())), o);
    expect(await c.fn("p", "r", {})).toBe(1);
    const [shell, sleep] = pids(pidfile);
    const t0 = performance.now();
    await c.close();
    expect(performance.now() - t0).toBeLessThan(1000);
    await until(() => !alive(shell!) && !alive(sleep!), 1000);
  });

  test("a timeout kills the whole group", async () => {
    const pidfile = join(dir, "timeout.pid");
    const c = rewardFromCommand(sleeper(pidfile, "cat > /dev/null"), { timeoutMs: 200 });
    await rejection(c.fn("p", "r", {}));
    const [shell, sleep] = pids(pidfile);
    await until(() => !alive(shell!) && !alive(sleep!), 1000);
    await c.close();
  });

  for (const how of ["process.exit(130)", "process.exit(0)"]) {
    test(`${how} while a request waits leaves nothing running`, async () => {
      const pidfile = join(dir, `exit-${how.replace(/\W/g, "")}.pid`);
      const script = join(dir, "exit.ts");
      writeFileSync(
        script,
        `import { rewardFromCommand } from ${JSON.stringify(join(root, "lib/train/reward.ts"))};
const c = rewardFromCommand(process.argv[2]!, { timeoutMs: 0 });
c.fn("p", "r", {});
setTimeout(() => ${how}, 300);
`,
      );
      const r = Bun.spawnSync([bun, script, sleeper(pidfile, "trap '' TERM; cat > /dev/null")], { timeout: 20_000 });
      expect(r.exitCode).toBe(Number(how.match(/\d+/)![0]));
      const [shell, sleep] = pids(pidfile);
      await until(() => !alive(shell!) && !alive(sleep!), 1000);
    });
  }
});

describe("user modules named by file:line", () => {
  const write = (name: string, text: string) => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };

  test("a reward that throws: the deepest frame in the file, through a helper and async code", async () => {
    const p = write(
      "throws.ts",
      `type Row = { answer?: string };
function check(row: Row): number {
  if (!row.answer) throw new Error("row has no answer");
  return 1;
}
export async function reward(_p: string, _r: string, row: Row) {
  await Bun.sleep(1);
  return check(row);
}
`,
    );
    const f = await rewardFromModule(p, o);
    const e = await rejection(f("p", "r", {}));
    expect(e).toBeInstanceOf(InputError);
    expect(e.message).toBe(`--reward ${p}:3: reward threw: row has no answer`);
  });

  test("a synchronous throw of a non-Error falls back to the path", async () => {
    const p = write("throws_string.ts", `export function reward() {\n  throw "nope";\n}\n`);
    const e = await rejection((await rewardFromModule(p, o))("p", "r", {}));
    expect(e.message).toBe(`--reward ${p}: reward threw: nope`);
  });

  test("a non-number names the reward's line; numeric strings still count", async () => {
    const p = write(
      "nan.ts",
      `// a comment\n\nexport const reward = (_p: string, r: string) => (r === "n" ? "1.5" : r === "u" ? undefined : { score: 1 });\n`,
    );
    const f = await rewardFromModule(p, o);
    expect(await f("p", "n", {})).toBe(1.5);
    expect((await rejection(f("p", "x", {}))).message).toBe(
      `--reward ${p}:3: reward returned {"score":1}, not a finite number`,
    );
    expect((await rejection(f("p", "u", {}))).message).toBe(
      `--reward ${p}:3: reward returned undefined, not a finite number`,
    );
  });

  test("a reward that never settles: refused after reward_timeout, or at once on a stop", async () => {
    const p = write("hangs.ts", `export default function () {\n  return new Promise<number>(() => {});\n}\n`);
    const ac = new AbortController();
    const f = await rewardFromModule(p, { timeoutMs: 200, signal: ac.signal });
    expect((await rejection(f("p", "r", {}))).message).toBe(
      `--reward ${p} did not answer within 0.2 s (raise --reward-timeout, 0 for no limit)`,
    );
    ac.abort("SIGTERM");
    expect(await rejection(f("p", "r", {}))).toBeInstanceOf(StopRequested);
  });

  test("modules that cannot be loaded name the file (and the line of a syntax error)", async () => {
    const bad = write("syntax.ts", `export function reward( {\n  return 1\n}\n`);
    expect((await rejection(rewardFromModule(bad, o))).message).toMatch(
      new RegExp(`^--reward ${bad}:2: cannot load \\(Expected`),
    );
    const top = write("top.ts", `const x = 1;\nthrow new Error("config missing");\n`);
    expect((await rejection(rewardFromModule(top, o))).message).toBe(`--reward ${top}:2: cannot load (config missing)`);
    expect((await rejection(rewardFromModule(join(dir, "absent.ts"), o))).message).toBe(
      `--reward ${join(dir, "absent.ts")}: no such file`,
    );
    const none = write("none.ts", `export const x = 1;\n`);
    expect((await rejection(rewardFromModule(none, o))).message).toBe(
      `--reward ${none}: export a function reward(prompt, response, row)`,
    );
  });

  test("callbacks: hooks keep `this`, a throw is named by file:line and hook, a hang by the timeout", async () => {
    const p = write(
      "cb.ts",
      `export default class {
  n = 0;
  on_step_end(t: any, m: { step: number }) {
    this.n++;
    if (m.step === 2) throw new Error(\`step \${m.step}: n = \${this.n}\`);
  }
  on_train_end() {
    return new Promise<void>(() => {});
  }
}
`,
    );
    const cb = await loadUserCallback(p);
    expect(Object.keys(cb).sort()).toEqual(["on_step_end", "on_train_end"]);
    const ac = new AbortController();
    const t: any = { cfg: { callback_timeout: 0.2 }, stop: ac };
    await cb.on_step_end!(t, { step: 1 });
    expect((await rejection(Promise.resolve(cb.on_step_end!(t, { step: 2 })))).message).toBe(
      `--callback ${p}:5: on_step_end threw: step 2: n = 2`,
    );
    expect((await rejection(Promise.resolve(cb.on_train_end!(t)))).message).toBe(
      `--callback ${p}: on_train_end did not answer within 0.2 s (raise --callback-timeout, 0 for no limit)`,
    );
    // a stop ends a wait in progress at once...
    t.cfg.callback_timeout = 0;
    setTimeout(() => ac.abort("SIGINT"), 50);
    const e = await rejection(Promise.resolve(cb.on_train_end!(t)));
    expect(e).toBeInstanceOf(StopRequested);
    expect((e as StopRequested).signal).toBe("SIGINT");
    // ...but hooks that start after it (the wind-down), or outside the step loop, get their deadline
    t.cfg.callback_timeout = 0.1;
    expect(await rejection(Promise.resolve(cb.on_train_end!(t)))).toBeInstanceOf(InputError);
    const t2: any = { cfg: { callback_timeout: 0.1 }, stop: new AbortController(), inLoop: false };
    setTimeout(() => t2.stop.abort("SIGTERM"), 20);
    expect(await rejection(Promise.resolve(cb.on_train_end!(t2)))).toBeInstanceOf(InputError);
  });

  test("callbacks that cannot be used are refused with the file named", async () => {
    const none = write("cb_none.ts", `export default { onStepEnd() {} };\n`);
    expect((await rejection(loadUserCallback(none))).message).toMatch(
      new RegExp(`^--callback ${none}: defines none of the hooks on_train_begin, `),
    );
    const ctor = write(
      "cb_ctor.ts",
      `export default class {\n  constructor() {\n    throw new Error("no config");\n  }\n}\n`,
    );
    expect((await rejection(loadUserCallback(ctor))).message).toBe(
      `--callback ${ctor}:3: constructor threw: no config`,
    );
    const noExport = write("cb_noexport.ts", `export const x = 1;\n`);
    expect((await rejection(loadUserCallback(noExport))).message).toMatch(/export a Callback as default/);
    const notFn = write("cb_notfn.ts", `export default { on_step_end: 3 };\n`);
    expect((await rejection(loadUserCallback(notFn))).message).toBe(
      `--callback ${notFn}: on_step_end is number, not a function`,
    );
  });
});
