// What a command tells a person goes to stderr, through one consola instance, so that --quiet and
// --verbose (and BUNLM_DEBUG) set one level for all of it, and stdout carries only the JSON a pipe
// reads. The status line (a progress line redrawn in place on a TTY) is cleared before anything else
// reaches the terminal: a log line, and through clearStatus() a command's stdout line, since on a
// terminal both streams land on the same screen.
import { createConsola, LogLevels, type LogObject } from "consola";

/** Colour only for a person at a terminal: never into a pipe or a file, never with NO_COLOR. */
export const color: boolean =
  Boolean(process.stderr.isTTY) && !process.env.NO_COLOR && process.env.TERM !== "dumb" && !process.env.CI;

const paint = (code: string, s: string) => (color ? `\x1b[${code}m${s}\x1b[0m` : s);

let statusShown = false;

/** Erase the status line, if one is shown. Call before writing anything else to the terminal. */
export function clearStatus(): void {
  if (!statusShown) return;
  process.stderr.write("\r\x1b[K");
  statusShown = false;
}

/** Whether a status line would be shown: stderr is a terminal and the level is not quiet. */
export function statusVisible(): boolean {
  return Boolean(process.stderr.isTTY) && !process.env.CI && log.level >= LogLevels.info;
}

/** Show `text` as the status line, replacing the previous one (a no-op off a terminal). */
export function setStatus(text: string): void {
  if (!statusVisible()) return;
  const width = process.stderr.columns || 120;
  // a line wider than the terminal wraps, and "\r" then redraws only its last row
  process.stderr.write(`\r\x1b[K${text.length >= width ? text.slice(0, width - 1) : text}`);
  statusShown = true;
}

const LABEL: Partial<Record<string, string>> = {
  fatal: paint("31", "error"),
  error: paint("31", "error"),
  warn: paint("33", "warning"),
  debug: paint("2", "debug"),
  trace: paint("2", "trace"),
};

function write(o: LogObject): void {
  clearStatus();
  const text = o.args.map((a) =>
    a instanceof Error ? (log.level >= LogLevels.debug ? a.stack : a.message) : String(a),
  );
  const label = LABEL[o.type];
  process.stderr.write(`bunlm: ${label ? `${label}: ` : ""}${text.join(" ")}\n`);
}

/** BUNLM_DEBUG=1 means verbose from the start (before flags are read); 2 adds each kernel compiled. */
const debugEnv = Number(process.env.BUNLM_DEBUG ?? 0);
const startLevel = debugEnv >= 2 ? LogLevels.trace : debugEnv >= 1 ? LogLevels.debug : LogLevels.info;

export const log = createConsola({
  level: startLevel,
  reporters: [{ log: write }],
  stdout: process.stderr,
  stderr: process.stderr,
});

export type Verbosity = "quiet" | "normal" | "verbose";

/** quiet: warnings and errors only, no status line; verbose: debug lines too (and Dawn's own). */
export function setVerbosity(v: Verbosity): void {
  log.level = v === "quiet" ? LogLevels.warn : v === "verbose" ? Math.max(LogLevels.debug, startLevel) : startLevel;
}

export const verbose = (): boolean => log.level >= LogLevels.debug;
