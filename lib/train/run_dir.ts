// The run directory (--out) of a training command, under the output policy (lib/io/out_dir.ts): a
// new or empty directory, or the run that --resume continues, is used as it is; an earlier run of
// the same command is replaced only with --overwrite (its checkpoints, `latest` and metrics.jsonl
// go, any other file stays); a directory that holds anything else is refused. A lock keeps a second
// run out while this one is alive. On resume in the same directory, metrics.jsonl is cut back to
// the resumed step, so the steps that run again are not listed twice.
import { existsSync, readdirSync, readFileSync, realpathSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { InputError } from "../base/errors.ts";
import { checkOutDir, removeIfEmpty } from "../io/out_dir.ts";
import { RunLock } from "../io/run_lock.ts";
import { removeStaleTemps, tempPid } from "../io/stale.ts";
import { writeFileAtomic } from "../io/files.ts";
import { CHECKPOINT_FILES, listCheckpoints, removeCheckpoint } from "./checkpoint.ts";
import { COMMAND, type Strategy, type TrainConfig } from "./config.ts";

// what a training run writes into its directory (temporary names carry a pid: lib/io/stale.ts)
const TEMP_PREFIXES = [".step_", "latest.", "metrics.jsonl."];
const isRunFile = (name: string) =>
  /^(step_\d{6,}|latest|metrics\.jsonl|\.lock)$/.test(name) ||
  (tempPid(name) !== null && TEMP_PREFIXES.some((p) => name.startsWith(p)));
// what a checkpoint directory holds (and the temporary names of its files)
export const isCheckpointFile = (name: string) => CHECKPOINT_FILES.includes(name.replace(/\.bunlm-\d+\.tmp$/, ""));

/** The strategy of the run in dir: from its checkpoints' meta.json, else metrics.jsonl's start line. */
function runStrategy(dir: string): string | null {
  const newest = listCheckpoints(dir)
    .reverse()
    .find((c) => c.strategy !== undefined);
  if (newest) return newest.strategy!;
  try {
    const first = JSON.parse(readFileSync(join(dir, "metrics.jsonl"), "utf8").split("\n", 1)[0]!);
    if (first?.event === "start" && typeof first.strategy === "string") return first.strategy;
  } catch {}
  return null;
}

const real = (p: string) => (existsSync(p) ? realpathSync(p) : resolve(p));
const inside = (p: string, dir: string) => real(p) === real(dir) || real(p).startsWith(real(dir) + "/");

export class RunDir {
  private constructor(
    readonly dir: string,
    private readonly lock: RunLock,
    private readonly created: boolean,
    private readonly replace: boolean,
    readonly continuing: boolean,
  ) {}

  /**
   * Check --out against the policy and lock it, before anything is loaded; nothing of an earlier
   * run is removed yet (see begin()).
   */
  static open(cfg: TrainConfig, strategy: Strategy, overwrite: boolean, note: (line: string) => void): RunDir {
    const dir = cfg.out;
    const command = COMMAND[strategy];
    const existed = existsSync(dir);
    // --resume CKPT --out RUN where CKPT is one of RUN's checkpoints: the same run, continued
    const continuing = cfg.resume !== undefined && existed && real(dirname(real(cfg.resume))) === real(dir);
    let replace = false;
    if (existed) RunLock.assertFree(dir, "--out");
    if (!continuing) {
      const state = checkOutDir(dir, {
        flag: "--out",
        command,
        overwrite,
        isEarlier: (d, entries) => {
          if (!entries.some(isRunFile)) return false;
          const s = runStrategy(d);
          if (s !== null && s !== strategy)
            throw new InputError(
              `--out: ${d} holds a \`${COMMAND[s as Strategy] ?? s}\` run; \`${command}\` writes its own run directory: give a new or empty one`,
            );
          return true;
        },
      });
      replace = state === "earlier";
      if (replace)
        for (const [flag, src] of [
          ["--init", cfg.init],
          ["--resume", cfg.resume],
        ] as const)
          if (src && inside(src, dir))
            throw new InputError(
              `${flag} ${src} lies inside --out ${dir}, which --overwrite would clear; copy it elsewhere or give another --out`,
            );
    }
    const lock = RunLock.acquire(dir, command, "--out", note);
    const gone = removeStaleTemps(dir, TEMP_PREFIXES, isCheckpointFile);
    if (gone.length)
      note(
        `bunlm: note: ${dir}: removed ${gone.length} temporary file(s) of runs that were killed (${gone.slice(0, 3).join(", ")})`,
      );
    return new RunDir(dir, lock, !existed, replace, continuing);
  }

  /**
   * The run is built and about to start: clear the earlier run that --overwrite replaces, or, when
   * continuing a run from step S in place, cut metrics.jsonl back to S.
   */
  begin(resumedStep: number | null): void {
    if (this.replace) {
      // the earlier run's own files go; a step directory a user added files to keeps them
      for (const name of readdirSync(this.dir)) {
        if (!isRunFile(name) || name === ".lock") continue;
        if (/^step_\d+$/.test(name)) removeCheckpoint(join(this.dir, name));
        else rmSync(join(this.dir, name), { recursive: true, force: true });
      }
      return;
    }
    if (this.continuing && resumedStep !== null) cutMetrics(join(this.dir, "metrics.jsonl"), resumedStep);
  }

  /** Release the lock; a directory this run created and left empty goes too. */
  close(): void {
    this.lock.release();
    if (this.created) removeIfEmpty(this.dir);
  }
}

/** Keep metrics.jsonl's lines up to step S (the first line past S and all after it go). */
export function cutMetrics(file: string, step: number): void {
  if (!existsSync(file)) return;
  const lines = readFileSync(file, "utf8").split("\n").filter(Boolean);
  let keep = lines.length;
  for (let i = 0; i < lines.length; i++) {
    let o: any;
    try {
      o = JSON.parse(lines[i]!);
    } catch {
      keep = i; // a line cut short by a kill: nothing after it is trustworthy
      break;
    }
    const s = typeof o?.step === "number" ? o.step : typeof o?.steps === "number" ? o.steps : 0;
    if (s > step) {
      keep = i;
      break;
    }
  }
  if (keep < lines.length)
    writeFileAtomic(
      file,
      lines
        .slice(0, keep)
        .map((l) => l + "\n")
        .join(""),
    );
}
