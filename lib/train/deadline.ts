// Waiting on user code (a reward, a callback hook) with two ways out: a deadline, so a hung reward
// becomes one line naming it and the flag that raises the limit instead of a silent hang; and the
// trainer's stop signal, so Ctrl-C or SIGTERM ends the wait at once instead of "finishing the step"
// forever. The user's work itself cannot be cancelled (a promise has no handle); it is abandoned.
// Also how user code is named when it fails: `--reward ./r.ts:12: reward threw: ...`, the line being
// the deepest stack frame inside the user's file.
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { InputError } from "../base/errors.ts";

/** The run was asked to stop (SIGINT, SIGTERM) while it waited on user code. */
export class StopRequested extends Error {
  code = "E_STOPPED";
  constructor(readonly signal: string) {
    super(`stopped by ${signal}`);
  }
}

export interface DeadlineOptions {
  /** milliseconds; 0 = no limit */
  ms: number;
  /** who is waited on, as the user named it: `--reward ./r.ts` */
  what: string;
  /** the flag that raises the limit: `--reward-timeout` */
  flag: string;
  /** aborted (reason: "SIGINT" / "SIGTERM") when the run must stop */
  signal?: AbortSignal;
}

function _seconds(ms: number): string {
  return String(+(ms / 1000).toFixed(3));
}

/** `work`'s outcome, or InputError after `ms`, or StopRequested as soon as `signal` aborts. */
export function withDeadline<T>(work: Promise<T> | T, o: DeadlineOptions): Promise<T> {
  const p = Promise.resolve(work);
  const stopped = () => new StopRequested(String(o.signal?.reason ?? "stop"));
  if (o.signal?.aborted) {
    p.catch(() => {}); // abandoned: a late rejection must not surface as unhandled
    return Promise.reject(stopped());
  }
  // setTimeout holds at most 2^31-1 ms (24.8 days) and fires at once beyond it: longer is no limit
  const ms = o.ms > 2147483647 ? 0 : o.ms;
  if (!(ms > 0) && !o.signal) return p;
  return new Promise<T>((resolve, reject) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const onAbort = () => settle(() => reject(stopped()));
    // whichever comes first wins; the timer and listener go, so nothing keeps the process alive
    const settle = (f: () => void) => {
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      o.signal?.removeEventListener("abort", onAbort);
      f();
    };
    if (ms > 0)
      timer = setTimeout(
        () =>
          settle(() =>
            reject(
              new InputError(`${o.what} did not answer within ${_seconds(ms)} s (raise ${o.flag}, 0 for no limit)`),
            ),
          ),
        ms,
      );
    o.signal?.addEventListener("abort", onAbort, { once: true });
    p.then(
      (v) => settle(() => resolve(v)),
      (e) => settle(() => reject(e)),
    );
  });
}

/**
 * The line in `file` (absolute) where error `e` arose: a load error's position, else the deepest
 * stack frame in that file (a helper elsewhere is then named by its call site there); 0 when none.
 */
export function lineIn(e: unknown, file: string): number {
  const at = (e as any)?.errors?.[0]?.position ?? (e as any)?.position;
  if (at?.file === file && at.line > 0) return at.line;
  const stack = typeof (e as any)?.stack === "string" ? ((e as any).stack as string) : "";
  for (const l of stack.split("\n")) {
    const m = /^\s*at (?:.*\()?(?:file:\/\/)?(.+?):(\d+):\d+\)?\s*$/.exec(l);
    if (m && m[1] === file) return Number(m[2]);
  }
  return 0;
}

/** The first line of what user code threw (a load error's first message, an Error's, or the value). */
export function thrownMessage(e: unknown): string {
  const x: any = typeof (e as any)?.errors?.[0]?.message === "string" ? (e as any).errors[0] : e;
  return String(typeof x?.message === "string" ? x.message : x).split("\n")[0]!;
}

/** `--reward ./r.ts:12`, or `--reward ./r.ts` when the line is unknown (0). */
export function where(flag: string, path: string, line: number): string {
  return `${flag} ${path}${line > 0 ? `:${line}` : ""}`;
}

/**
 * Import a user's module (`--reward`, `--callback`); a missing file or a load error names the file.
 * Loading runs the module's top level, which may await: it gets the same limit as its calls.
 */
export async function importUserModule(
  flag: string,
  path: string,
  limit: Omit<DeadlineOptions, "what">,
): Promise<{ mod: Record<string, unknown>; file: string }> {
  const file = resolve(path);
  if (!existsSync(file)) throw new InputError(`${flag} ${path}: no such file`);
  const load = (async () => {
    try {
      return (await import(file)) as Record<string, unknown>;
    } catch (e) {
      throw new InputError(`${where(flag, path, lineIn(e, file))}: cannot load (${thrownMessage(e)})`);
    }
  })();
  return { mod: await withDeadline(load, { ...limit, what: `${flag} ${path}: loading it` }), file };
}
