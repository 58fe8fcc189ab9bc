// GRPO rewards from the user, either
//  - a TS/JS module exporting reward(prompt, response, row) (sync or async), or
//  - an external command, started once and kept for the whole run, that reads one JSON request per
//    line on stdin, {"id": K, "prompt", "response", "row"} with K = 1, 2, 3, ..., and writes one
//    reply line per request on stdout, {"id": K, "reward": X} with X a finite number.
// The id makes a stray line (a debug print, a second answer, a missing one) an error at once instead
// of rewards silently shifting onto the wrong responses. Every wait has a deadline (reward_timeout)
// and ends when the trainer's stop signal aborts. The command runs in its own process group, and the
// whole group is killed on a timeout, an error, close() and process exit, so neither the shell nor
// anything it started (`sleep`, a server) outlives the run.
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { InputError } from "../base/errors.ts";
import { importUserModule, lineIn, StopRequested, thrownMessage, where, withDeadline } from "./deadline.ts";

export type RewardFn = (prompt: string, response: string, row: Record<string, unknown>) => Promise<number>;

export interface RewardOptions {
  /** per request, milliseconds; 0 = no limit */
  timeoutMs: number;
  /** the trainer's stop signal (Trainer.stop.signal) */
  signal?: AbortSignal;
}

const TIMEOUT_FLAG = "--reward-timeout";
// a reply line is a few dozen bytes; one this long is not a reply, and holding it costs memory
const MAX_REPLY = 1 << 20;

export async function rewardFromModule(path: string, o: RewardOptions): Promise<RewardFn> {
  const { mod, file } = await importUserModule("--reward", path, {
    ms: o.timeoutMs,
    flag: TIMEOUT_FLAG,
    signal: o.signal,
  });
  const f = mod.reward ?? mod.default;
  if (typeof f !== "function")
    throw new InputError(`--reward ${path}: export a function reward(prompt, response, row)`);
  const who = `--reward ${path}`;
  return async (p, r, row) => {
    // an async wrapper turns a synchronous throw into a rejection, named the same way
    const work = (async () => f(p, r, row))().catch((e) => {
      throw new InputError(`${where("--reward", path, lineIn(e, file))}: reward threw: ${thrownMessage(e)}`);
    });
    const x = await withDeadline(work, { ms: o.timeoutMs, what: who, flag: TIMEOUT_FLAG, signal: o.signal });
    const n = typeof x === "string" && x.trim() !== "" ? Number(x) : x;
    if (typeof n !== "number" || !Number.isFinite(n))
      throw new InputError(
        `${where("--reward", path, _definitionLine(file))}: reward returned ${_show(x)}, not a finite number`,
      );
    return n;
  };
}

/** The line declaring the reward function: a returned value carries no stack to point with. */
function _definitionLine(file: string): number {
  try {
    const lines = readFileSync(file, "utf8").split("\n");
    const i = lines.findIndex((l) => /\bfunction\s*\*?\s*reward\b|\breward\s*[:=]|\bexport\s+default\b/.test(l));
    return i + 1;
  } catch {
    return 0;
  }
}

function _show(x: unknown): string {
  if (x === undefined) return "undefined";
  if (typeof x === "number") return String(x);
  const s = (() => {
    try {
      return JSON.stringify(x) ?? String(x);
    } catch {
      return String(x);
    }
  })();
  return s.length > 60 ? s.slice(0, 57) + "..." : s;
}

export interface RewardCommand {
  fn: RewardFn;
  /** end stdin, give the command a moment to exit on EOF, then kill its process group */
  close(): Promise<void>;
  /** the process group id (the shell's pid): for tests */
  readonly pgid: number;
}

/** How long close() waits for the command to exit on stdin EOF, and SIGTERM for the group to go. */
const EXIT_GRACE_MS = 1000;
const TERM_GRACE_MS = 200;

export function rewardFromCommand(cmd: string, o: RewardOptions): RewardCommand {
  const who = `--reward-cmd '${cmd}'`;
  // detached: a process group of its own, so one kill reaches everything the shell starts (and a
  // Ctrl-C on the terminal reaches only the trainer, which decides what happens to the group)
  const p: ChildProcess = spawn("sh", ["-c", cmd], { detached: true, stdio: ["pipe", "pipe", "inherit"] });
  const pgid = p.pid ?? 0;
  let exited: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  let killed = false;
  let failure: Error | null = null; // sticky: once out of step, every later request fails the same way
  let sent = 0; // requests written: ids 1..sent
  let answered = 0; // ids 1..answered have their reply
  let waiter: { id: number; resolve: (x: number) => void; reject: (e: Error) => void } | null = null;
  let buf = "";

  const killGroup = (sig: NodeJS.Signals) => {
    if (pgid <= 0) return;
    try {
      process.kill(-pgid, sig);
    } catch {} // ESRCH: the group is gone already
  };
  // synchronous, so even process.exit() (a second Ctrl-C) takes the group along
  const onExit = () => {
    killGroup("SIGTERM");
    killGroup("SIGKILL");
  };
  process.on("exit", onExit);
  const kill = () => {
    if (killed) return;
    killed = true;
    killGroup("SIGTERM");
    setTimeout(() => {
      killGroup("SIGKILL");
      process.off("exit", onExit);
    }, TERM_GRACE_MS).unref();
  };

  const fail = (why: string) => {
    failure ??= new InputError(`${who}: ${why}`);
    const w = waiter;
    waiter = null;
    w?.reject(failure);
    kill();
  };

  const onLine = (line: string) => {
    if (failure) return;
    if (line.trim() === "") return fail(`printed an empty line (one reply line {"id": K, "reward": X} per request)`);
    let msg: any;
    try {
      msg = JSON.parse(line);
    } catch {}
    const id = msg?.id;
    if (msg === null || typeof msg !== "object" || !Number.isInteger(id))
      return fail(
        `printed ${_show(line)}, not a reply; answer each request with one line {"id": K, "reward": X}, K the request's id`,
      );
    if (id <= answered) return fail(`answered request ${id} twice (one reply line per request)`);
    if (!waiter || id !== waiter.id)
      return fail(
        id > sent
          ? `answered request ${id}, which was not sent yet (${sent} so far; one reply line per request)`
          : `answered request ${id} while request ${waiter?.id ?? answered + 1} was waiting (reply in order)`,
      );
    const x = msg.reward;
    if (typeof x !== "number" || !Number.isFinite(x))
      return fail(`request ${id}: "reward" is ${_show(x)}, not a finite number`);
    answered = id;
    const w = waiter;
    waiter = null;
    w.resolve(x);
  };

  p.stdout!.setEncoding("utf8");
  p.stdout!.on("data", (chunk: string) => {
    if (failure) return;
    // look for line ends in the new chunk only: rescanning a long unfinished line would be quadratic
    let from = buf.length;
    buf += chunk;
    for (let nl = buf.indexOf("\n", from); nl >= 0; nl = buf.indexOf("\n")) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      onLine(line.endsWith("\r") ? line.slice(0, -1) : line);
      from = 0;
    }
    if (buf.length > MAX_REPLY) {
      buf = "";
      fail(
        `printed more than ${MAX_REPLY >> 20} MiB without a newline; a reply is one short line {"id": K, "reward": X}`,
      );
    }
  });
  const gone = () => {
    if (killed && !exited) return; // we ended it: the reason is already recorded
    const how = exited
      ? exited.signal
        ? `was killed by ${exited.signal}`
        : `exited with code ${exited.code}${exited.code === 127 ? " (command not found)" : ""}`
      : "closed its stdout";
    if (buf.trim() !== "") onLine(buf); // a last reply without its newline still counts
    buf = "";
    if (waiter) fail(`${how} before answering request ${waiter.id}`);
    else if (!failure)
      failure = new InputError(`${who}: ${how} after ${answered} replies; it must keep answering for the whole run`);
  };
  // the reply may still be in the pipe when the exit is reported: let stdout drain first
  p.on("exit", (code, signal) => {
    exited = { code, signal };
    setTimeout(gone, 50);
  });
  // a closed stdout is usually an exit about to be reported, with the code worth naming
  p.stdout!.on("end", () => setTimeout(gone, exited ? 0 : 200));
  p.on("error", (e) => fail(`cannot start (${e.message})`));
  p.stdin!.on("error", () => {}); // EPIPE once the command has gone; its exit is reported instead

  const ask = async (prompt: string, response: string, row: Record<string, unknown>): Promise<number> => {
    if (failure) throw failure;
    const id = ++sent;
    const reply = new Promise<number>((resolve, reject) => (waiter = { id, resolve, reject }));
    p.stdin!.write(JSON.stringify({ id, prompt, response, row }) + "\n");
    try {
      return await withDeadline(reply, { ms: o.timeoutMs, what: who, flag: TIMEOUT_FLAG, signal: o.signal });
    } catch (e) {
      waiter = null;
      if (!(e instanceof StopRequested)) failure ??= e as Error;
      kill(); // a timed-out command may answer late and would be out of step from then on
      throw e instanceof StopRequested ? e : failure!;
    }
  };
  // one request in flight at a time: replies are matched to the one waiting request
  let queue: Promise<unknown> = Promise.resolve();
  const fn: RewardFn = (prompt, response, row) => {
    const next = queue.then(() => ask(prompt, response, row));
    queue = next.catch(() => {});
    return next;
  };

  const close = async () => {
    if (!killed) {
      p.stdin!.end();
      if (!exited) {
        await new Promise<void>((res) => {
          const t = setTimeout(res, EXIT_GRACE_MS);
          p.once("exit", () => {
            clearTimeout(t);
            res();
          });
        });
      }
    }
    killed = true;
    // the shell may be gone while what it started lives on in the group
    killGroup("SIGTERM");
    await Bun.sleep(TERM_GRACE_MS);
    killGroup("SIGKILL");
    process.off("exit", onExit);
  };

  return { fn, close, pgid };
}
