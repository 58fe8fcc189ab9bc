// What every command shares: strict flags, help, verbosity, and the one way a command fails.
// - Flags are strict: citty ignores a flag it does not know (`--max-step 5` would run a whole epoch),
//   so every flag is checked against the (sub)command's definition first; an unknown one is refused
//   with the closest known name, and one given twice is refused unless it repeats by design.
// - Help is ours, not citty's: the same text whether run as `bunlm X` or `bun cmd/X.ts`, for every
//   subcommand, with each option's default, and colour only for a person at a terminal.
// - Failure is one line on stderr naming what went wrong, exit code 1, never a stack trace for a user
//   error (--verbose or BUNLM_DEBUG=1 shows it).
import { runCommand, type ArgDef, type ArgsDef, type CommandDef } from "citty";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { GpuUnavailableError } from "../lib/gpu/device.ts";
import { InputError } from "../lib/base/errors.ts";
import { closest } from "../lib/base/suggest.ts";
import { clearStatus, log, setVerbosity, verbose } from "../lib/base/log.ts";

/** Flags every command takes. */
export const COMMON_ARGS: ArgsDef = {
  quiet: { type: "boolean", alias: "q", description: "warnings and errors only, no progress line" },
  verbose: { type: "boolean", description: "debug lines too, and the WebGPU driver's own messages" },
};

/** A flag on one line: what it holds, what it means, its default (off). */
export const bool = (description: string) => ({ type: "boolean", default: false, description }) as const;
/** A valued flag on one line: its value's hint, what it means, its default or that it is required. */
export const str = (valueHint: string, description: string, o: { default?: string; required?: true } = {}) =>
  ({ type: "string", valueHint, description, ...o }) as const;

export const VERSION: string = JSON.parse(readFileSync(join(import.meta.dir, "..", "package.json"), "utf8")).version;

export function failLine(e: unknown): string {
  let msg = e instanceof Error ? e.message : String(e);
  // a write that found the disk full, from a place that did not name its file
  const code = (e as { code?: string })?.code;
  if (code === "ENOSPC") msg = `${(e as { path?: string }).path ?? "a write"}: no space left on the device`;
  const prefix = e instanceof GpuUnavailableError ? "no usable GPU" : "error";
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the ESC that starts a colour code
  const line = msg.split("\n")[0]!.replace(/\x1b\[[0-9;]*m/g, "");
  return `bunlm: ${prefix}: ${(e as Error)?.name === "CLIError" ? cittyLine(line) : line}`;
}

/** citty's own messages, said the way ours are. */
function cittyLine(m: string): string {
  let x = /^Missing required (?:positional )?argument: (\S+)$/.exec(m);
  if (x) return `${x[1]} is required`;
  x = /^Invalid value for argument: (\S+) \((.*)\)\. Expected one of: (.*)\.$/.exec(m);
  if (x) return `${x[1]}: expected one of ${x[3]} (got ${JSON.stringify(x[2])})`;
  return m;
}

/** Run a command's main; on failure print one line to stderr and exit 1. */
export async function runMain(main: () => Promise<void>): Promise<void> {
  try {
    await main();
    process.exit(0);
  } catch (e) {
    clearStatus();
    if (verbose()) console.error(e);
    process.stderr.write(`${failLine(e)}\n`);
    process.exit(1);
  }
}

const resolve = async <T>(x: T | (() => T | Promise<T>)): Promise<T> =>
  typeof x === "function" ? await (x as () => T)() : x;
const camel = (s: string) => s.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
const aliasesOf = (def: ArgDef): string[] => (def.alias ? (Array.isArray(def.alias) ? def.alias : [def.alias]) : []);

interface FlagSpec {
  /** every spelling → the flag it names */
  names: Map<string, string>;
  valued: Set<string>;
  /** flags that may be given more than once (their description says "repeat") */
  repeatable: Set<string>;
  shown: string[];
}

function flagSpec(args: ArgsDef): FlagSpec {
  const names = new Map([
      ["help", "help"],
      ["h", "help"],
    ]),
    valued = new Set<string>(),
    repeatable = new Set<string>(),
    shown: string[] = [];
  for (const [name, def] of Object.entries(args)) {
    if (def.type === "positional") continue;
    for (const a of [name, camel(name), ...aliasesOf(def)]) {
      names.set(a, name);
      if (def.type === "boolean") names.set(`no-${a}`, name);
      else valued.add(a);
    }
    if (/\brepeat/.test(def.description ?? "")) repeatable.add(name);
    shown.push(name);
  }
  return { names, valued, repeatable, shown };
}

/** The command with the common flags added to it and to each of its subcommands. */
async function withCommon(cmd: CommandDef<any>): Promise<CommandDef<any>> {
  const subs = await resolve(cmd.subCommands as any);
  const out: CommandDef<any> = { ...cmd, args: { ...(await resolve(cmd.args ?? {})), ...COMMON_ARGS } };
  if (subs) {
    const mapped: Record<string, CommandDef<any>> = {};
    for (const [k, s] of Object.entries(subs)) mapped[k] = await withCommon(await resolve(s as any));
    out.subCommands = mapped;
  }
  return out;
}

interface Target {
  cmd: CommandDef<any>;
  /** the args that belong to cmd */
  args: string[];
  /** subcommand names from the top */
  path: string[];
}

/** The (sub)command rawArgs address, and the args that belong to it. */
async function target(cmd: CommandDef<any>, rawArgs: string[]): Promise<Target> {
  const path: string[] = [];
  for (;;) {
    const subs = await resolve(cmd.subCommands as any);
    if (!subs || Object.keys(subs).length === 0) return { cmd, args: rawArgs, path };
    const spec = flagSpec(await resolve(cmd.args ?? {}));
    let i = 0;
    for (; i < rawArgs.length; i++) {
      const a = rawArgs[i]!;
      if (!a.startsWith("-")) break;
      if (!a.includes("=") && spec.valued.has(a.replace(/^-{1,2}/, ""))) i++;
    }
    const name = rawArgs[i];
    if (name === undefined || !Object.hasOwn(subs, name)) return { cmd, args: rawArgs, path };
    path.push(name);
    cmd = await resolve(subs[name]);
    rawArgs = rawArgs.slice(i + 1);
  }
}

/**
 * The flags given on a command line, by the name the command defines (`--batch-size`, `--batchSize`
 * → batch-size), each with every value given (booleans: "true" or "false" for --no-x). Positional
 * arguments and anything after `--` are left out. Unknown flags are skipped (checkFlags refuses them).
 */
export function givenFlags(args: ArgsDef, rawArgs: string[]): Map<string, string[]> {
  const spec = flagSpec(args);
  const out = new Map<string, string[]>();
  for (let i = 0; i < rawArgs.length; i++) {
    const a = rawArgs[i]!;
    if (a === "--") break;
    if (!a.startsWith("-") || a === "-" || /^-\.?\d/.test(a)) continue;
    const eq = a.indexOf("=");
    const name = (eq > 0 ? a.slice(0, eq) : a).replace(/^-{1,2}/, "");
    const flag = spec.names.get(name);
    if (flag === undefined) continue;
    let value: string;
    if (!spec.valued.has(name)) value = name.startsWith("no-") && spec.names.get(name) !== name ? "false" : "true";
    else if (eq > 0) value = a.slice(eq + 1);
    else if (i + 1 < rawArgs.length) value = rawArgs[++i]!;
    else continue;
    out.set(flag, [...(out.get(flag) ?? []), value]);
  }
  return out;
}

const progName = (path: string[], top: CommandDef<any>, topMeta: { name?: string }) =>
  ["bunlm", topMeta.name ?? "", ...path].filter(Boolean).join(" ") || String(top);

/** Refuse flags the command does not define (naming the closest one), and flags given twice. */
export async function checkFlags(cmd: CommandDef<any>, rawArgs: string[]): Promise<void> {
  const t = await target(cmd, rawArgs);
  const spec = flagSpec(await resolve(t.cmd.args ?? {}));
  const meta = (await resolve(cmd.meta ?? {})) as { name?: string };
  const usage = `${progName(t.path, cmd, meta)} --help`;
  const seen = new Set<string>();
  for (let i = 0; i < t.args.length; i++) {
    const a = t.args[i]!;
    if (a === "--") break;
    // "-" is stdin; "-3" a negative number given as a value
    if (!a.startsWith("-") || a === "-" || /^-\.?\d/.test(a)) continue;
    const name = a.replace(/^-{1,2}/, "").split("=")[0]!;
    const flag = spec.names.get(name);
    if (flag === undefined) {
      const near = closest(name, spec.shown);
      throw new InputError(
        `unknown flag ${a.split("=")[0]}${near ? ` (did you mean --${near}?)` : ""}; \`${usage}\` lists the flags`,
      );
    }
    // the last of two values would win without a word
    if (seen.has(flag) && !spec.repeatable.has(flag)) throw new InputError(`--${flag} is given twice; give it once`);
    seen.add(flag);
    if (!a.includes("=") && spec.valued.has(name)) i++;
  }
}

/** Colour for help on stdout: only at a terminal, never with NO_COLOR. */
export const helpColor = (): boolean =>
  Boolean(process.stdout.isTTY) && !process.env.NO_COLOR && process.env.TERM !== "dumb";

/** One line per row (so `--help | grep` finds a flag with its description), names aligned. */
function columns(rows: [string, string][], paint: (s: string) => string): string[] {
  const w = Math.min(28, Math.max(...rows.map((r) => r[0].length)));
  return rows.map(([a, b]) => `  ${paint(a)}${" ".repeat(Math.max(0, w - a.length))}  ${b}`);
}

/** The help text of a (sub)command: usage, arguments, options with their defaults, subcommands. */
export async function renderHelp(top: CommandDef<any>, path: string[] = []): Promise<string> {
  const full = await withCommon(top);
  let cmd = full;
  for (const p of path) cmd = await resolve((await resolve(cmd.subCommands as any))[p]);
  const color = helpColor();
  const bold = (s: string) => (color ? `\x1b[1m${s}\x1b[22m` : s);
  const cyan = (s: string) => (color ? `\x1b[36m${s}\x1b[39m` : s);
  const topMeta = (await resolve(top.meta ?? {})) as { name?: string };
  const meta = (await resolve(cmd.meta ?? {})) as { description?: string };
  const name = progName(path, top, topMeta);
  const args = Object.entries(await resolve(cmd.args ?? {})) as [string, ArgDef][];
  const subs = (await resolve(cmd.subCommands as any)) as Record<string, any> | undefined;
  const pos = args.filter(([, d]) => d.type === "positional");
  const usage = [name, subs ? "<command>" : "", "[options]"];
  for (const [n, d] of pos) {
    const shown = d.valueHint ?? n.toUpperCase();
    usage.push(d.required === false || d.default !== undefined ? `[${shown}]` : shown);
  }
  const out = [`${bold("Usage:")} ${usage.filter(Boolean).join(" ")}`, ""];
  if (meta.description) out.push(meta.description, "");
  if (subs) {
    const rows: [string, string][] = [];
    for (const [k, s] of Object.entries(subs)) {
      const m = (await resolve((await resolve(s))?.meta ?? {})) as { description?: string; hidden?: boolean };
      if (!m.hidden) rows.push([k, m.description ?? ""]);
    }
    out.push(
      bold("Commands:"),
      ...columns(rows, cyan),
      "",
      `\`${name} <command> --help\` shows a command's options.`,
      "",
    );
  }
  if (pos.length) {
    out.push(bold("Arguments:"));
    out.push(
      ...columns(
        pos.map(([n, d]) => [d.valueHint ?? n.toUpperCase(), d.description ?? ""]),
        cyan,
      ),
      "",
    );
  }
  const rows: [string, string][] = [];
  for (const [n, d] of args) {
    if (d.type === "positional") continue;
    const short = aliasesOf(d)
      .filter((a) => a.length === 1)
      .map((a) => `-${a}, `)
      .join("");
    const hint = d.type === "boolean" ? "" : ` ${d.valueHint ?? "VALUE"}`;
    const flag = d.type === "boolean" && d.default === true ? `--[no-]${n}` : `--${n}`;
    // a default of only whitespace would read as nothing: quote it
    const value = typeof d.default === "string" && !d.default.trim() ? JSON.stringify(d.default) : d.default;
    const shown = d.default !== undefined && d.default !== false && d.default !== "" ? ` (default: ${value})` : "";
    const req = d.required && d.default === undefined ? " (required)" : "";
    rows.push([`${short}${flag}${hint}`, `${d.description ?? ""}${shown}${req}`]);
  }
  rows.push(["-h, --help", "show this help"]);
  if (path.length === 0) rows.push(["--version", "print bunlm's version"]);
  out.push(bold("Options:"), ...columns(rows, cyan));
  return `${out.join("\n")}\n`;
}

/**
 * Entry for a command: --help and --version, verbosity, strict flags, then citty parses and runs;
 * errors become one line. rawArgs defaults to the process's; `bunlm X` passes what follows X.
 */
export async function runCli(cmd: CommandDef<any>, rawArgs: string[] = process.argv.slice(2)): Promise<void> {
  await runMain(async () => {
    const full = await withCommon(cmd);
    const end = rawArgs.indexOf("--");
    const flags = end < 0 ? rawArgs : rawArgs.slice(0, end);
    const t = await target(full, rawArgs);
    const tEnd = t.args.indexOf("--");
    const own = tEnd < 0 ? t.args : t.args.slice(0, tEnd);
    if (own.includes("--help") || own.includes("-h")) {
      process.stdout.write(await renderHelp(cmd, t.path));
      return;
    }
    if (t.path.length === 0 && flags.includes("--version")) {
      console.log(`bunlm ${VERSION}`);
      return;
    }
    const given = givenFlags(await resolve(t.cmd.args ?? {}), t.args);
    const v = (f: string) => given.get(f)?.at(-1) === "true";
    if (v("quiet") && v("verbose")) throw new InputError("--quiet and --verbose exclude each other");
    setVerbosity(v("quiet") ? "quiet" : v("verbose") ? "verbose" : "normal");
    const subs = await resolve(t.cmd.subCommands as any);
    if (subs && Object.keys(subs).length) {
      const first = own.find((a) => !a.startsWith("-"));
      const names = Object.keys(subs);
      const near = first && closest(first, names);
      const list = `${names.slice(0, -1).join(", ")} or ${names.at(-1)}`;
      throw new InputError(
        first === undefined
          ? `${progName(t.path, cmd, (await resolve(cmd.meta ?? {})) as { name?: string })} needs a command: ${list}`
          : `unknown command "${first}"${near ? ` (did you mean ${near}?)` : ""}; the commands are ${list}`,
      );
    }
    await checkFlags(full, rawArgs);
    log.debug(`bunlm ${VERSION}, Bun ${Bun.version}`);
    await runCommand(full, { rawArgs });
  });
}
