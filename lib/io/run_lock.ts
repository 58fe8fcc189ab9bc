// One run per run directory: RUN_DIR/.lock holds the owner's pid, host, command and start time while
// a training run uses the directory, so a second run on the same --out is refused instead of mixing
// its checkpoints and metrics with the first's. The lock is created with O_EXCL (atomic on local and
// NFSv3+ file systems); a lock whose process is gone (same host) is taken over with a note; one from
// another host cannot be checked, so it is refused with the path to remove. A pid alone is not an
// identity (a restarted container hands out the same pids again), so on Linux the lock also records
// the boot id and the process's start time: a live process with the lock's pid but another start
// time, or a lock from before the last boot, belongs to a run that is gone.
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { InputError } from "../base/errors.ts";
import { alive } from "./stale.ts";

interface Owner {
  pid: number;
  host: string;
  command: string;
  started: string;
  /** Linux: /proc/sys/kernel/random/boot_id, and field 22 of /proc/PID/stat (clock ticks since boot) */
  boot?: string;
  start_ticks?: string;
}

function bootId(): string | undefined {
  try {
    return readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
  } catch {
    return undefined;
  }
}

function startTicks(pid: number): string | undefined {
  try {
    // the command name (field 2) may hold spaces and parentheses: count fields after the last ")"
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

/** Is the run that wrote this lock still running? */
function running(o: Owner): boolean {
  if (o.boot && bootId() && o.boot !== bootId()) return false;
  if (o.pid === process.pid) return false; // not us (we have not written it): an earlier process with our pid
  if (!alive(o.pid)) return false;
  const now = startTicks(o.pid);
  return !(o.start_ticks && now && o.start_ticks !== now);
}

function readOwner(file: string): Owner | null {
  try {
    const o = JSON.parse(readFileSync(file, "utf8"));
    return typeof o?.pid === "number" ? o : null;
  } catch {
    return null; // half-written by a process killed while creating it
  }
}

export class RunLock {
  private constructor(
    readonly file: string,
    private readonly text: string,
  ) {}

  /** Lock `dir` (created if missing) for this process; `note` receives a line when a dead run's lock is taken over. */
  static acquire(dir: string, command: string, flag: string, note: (line: string) => void): RunLock {
    mkdirSync(dir, { recursive: true });
    const file = join(dir, ".lock");
    const text =
      JSON.stringify({
        pid: process.pid,
        host: hostname(),
        command,
        started: new Date().toISOString(),
        boot: bootId(),
        start_ticks: startTicks(process.pid),
      }) + "\n";
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(file, "wx");
        writeSync(fd, text);
        closeSync(fd);
        const lock = new RunLock(file, text);
        process.on("exit", lock.onExit);
        return lock;
      } catch (e: any) {
        if (e.code !== "EEXIST") throw e;
      }
      const o = RunLock.assertFree(dir, flag);
      note(
        `bunlm: note: ${dir}: taking over the lock of ${o ? `process ${o.pid} (${o.command}, since ${o.started})` : "a process"}, which is no longer running`,
      );
      rmSync(file, { force: true });
    }
    throw new InputError(`${flag}: ${dir}: could not take its lock (${file}); another run is starting there`);
  }

  /** Refuse when a live run holds dir's lock; returns the dead owner, if any. Creates nothing. */
  static assertFree(dir: string, flag: string): Owner | null {
    const file = join(dir, ".lock");
    if (!existsSync(file)) return null;
    const o = readOwner(file);
    if (o && o.host !== hostname())
      throw new InputError(
        `${flag}: ${dir} is locked by process ${o.pid} on host ${o.host} (${o.command}, since ${o.started}); if that run is gone, remove ${file}`,
      );
    if (o && running(o))
      throw new InputError(
        `${flag}: ${dir} is in use by another run (process ${o.pid}, ${o.command}, since ${o.started}); wait for it to end or give another directory (if no such run exists, remove ${file})`,
      );
    return o;
  }

  private onExit = () => this.release();

  /** Remove the lock if it is still ours. */
  release(): void {
    process.off("exit", this.onExit);
    try {
      if (readFileSync(this.file, "utf8") === this.text) rmSync(this.file, { force: true });
    } catch {}
  }
}
