// What every hostile case asserts: the command ran as a user runs it (a child process, as from a
// shell), exited with the expected code within a bounded time, said what was wrong in exactly one
// line on stderr (`bunlm: error: ...`, no stack trace), and left every file that existed before
// byte-identical.
import { expect } from "bun:test";
import { createHash } from "node:crypto";
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { join, relative } from "node:path";
import { bun, root } from "../train/helpers.ts";

export { bun, root, tmp, seqData, events, TINY_MODEL } from "../train/helpers.ts";

export interface Run {
  code: number | null;
  signal: string | null;
  out: string;
  err: string;
  ms: number;
}

export interface RunOpts {
  cwd?: string;
  env?: Record<string, string | undefined>;
  stdin?: string | Uint8Array;
  /** kill the command after this long; the test then fails on the exit code (a hang) */
  timeoutMs?: number;
}

/** Run `bun ARGS...` (e.g. ["cmd/pack.ts", ...]) from the repository root. */
export function run(args: string[], o: RunOpts = {}): Run {
  const t0 = performance.now();
  const p = Bun.spawnSync([bun, ...args], {
    cwd: o.cwd ?? root,
    env: { ...process.env, ...o.env },
    stdin: o.stdin === undefined ? "ignore" : typeof o.stdin === "string" ? new TextEncoder().encode(o.stdin) : o.stdin,
    timeout: o.timeoutMs ?? 60_000,
  });
  return {
    code: p.exitCode,
    signal: p.signalCode ?? null,
    out: p.stdout.toString(),
    err: p.stderr.toString(),
    ms: performance.now() - t0,
  };
}

/**
 * The refusal a user should see: exit code `code`, stderr exactly one line that starts with
 * "bunlm: " and matches `pattern`, no stack trace, nothing on stdout but JSON lines.
 */
export function expectRefusal(r: Run, pattern: RegExp, code = 1): void {
  const lines = r.err.split("\n").filter((l) => l.trim() !== "");
  const show = `exit ${r.code}${r.signal ? ` (${r.signal})` : ""}, stderr:\n${r.err.slice(0, 2000)}`;
  if (lines.length !== 1) throw new Error(`expected exactly one line on stderr, got ${lines.length}; ${show}`);
  const line = lines[0]!;
  if (!/^bunlm: /.test(line)) throw new Error(`stderr does not start with "bunlm: "; ${show}`);
  if (!pattern.test(line)) throw new Error(`stderr does not match ${pattern}; ${show}`);
  expect(r.code).toBe(code);
  for (const l of r.out.split("\n").filter(Boolean)) expect(() => JSON.parse(l)).not.toThrow();
}

export type Snapshot = Map<string, string>;

/** Every file and symlink under dir (recursively): path → content hash (or link target). */
export function snapshot(dir: string): Snapshot {
  const out: Snapshot = new Map();
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const st = lstatSync(p);
      const key = relative(dir, p);
      if (st.isSymbolicLink()) out.set(key, `-> ${readlinkSync(p)}`);
      else if (st.isDirectory()) walk(p);
      else if (st.isFile()) out.set(key, createHash("sha256").update(readFileSync(p)).digest("hex"));
      else out.set(key, `special ${st.mode}`);
    }
  };
  if (existsSync(dir)) walk(dir);
  return out;
}

/** Every file that was in `before` is still there with the same bytes (new files are allowed). */
export function expectUnchanged(before: Snapshot, dir: string): void {
  const after = snapshot(dir);
  const lost: string[] = [];
  for (const [k, h] of before) if (after.get(k) !== h) lost.push(`${k}${after.has(k) ? " (changed)" : " (gone)"}`);
  if (lost.length) throw new Error(`files that existed before were lost or changed: ${lost.slice(0, 10).join(", ")}`);
}

let cases = 0;
/** A directory of its own for one case under base (created unless `create` is false). */
export function caseDir(base: string, create = true): string {
  const d = join(base, `case-${cases++}`);
  if (create) mkdirSync(d);
  return d;
}

/** Pretrain the fixture's tiny model on seq for `steps` steps into `out`; returns the last step's checkpoint. */
export function pretrained(seq: string, model: string, out: string, steps: number, ...extra: string[]): string {
  const r = run([
    "cmd/pretrain.ts",
    "--data",
    seq,
    "--out",
    out,
    "--model",
    model,
    "--max-steps",
    String(steps),
    "--batch-size",
    "2",
    ...extra,
  ]);
  if (r.code !== 0) throw new Error(r.err);
  return join(out, `step_${String(steps).padStart(6, "0")}`);
}
