// The one way a command fails: a single line on stderr naming what went wrong, exit code non-zero,
// never a stack trace for a user error (BUNLM_DEBUG=1 shows it). Flags are strict: citty ignores a
// flag it does not know (`--max-step 5` would run a whole epoch), so every flag is checked against
// the command's definition first and an unknown one is refused with the closest known name.
import { runCommand, showUsage, type ArgsDef, type CommandDef } from "citty";
import { GpuUnavailableError } from "../lib/gpu/device.ts";
import { InputError } from "../lib/base/errors.ts";
import { closest } from "../lib/base/suggest.ts";

export function failLine(e: unknown): string {
  let msg = e instanceof Error ? e.message : String(e);
  // a write that found the disk full, from a place that did not name its file
  const code = (e as { code?: string })?.code;
  if (code === "ENOSPC") msg = `${(e as { path?: string }).path ?? "a write"}: no space left on the device`;
  const prefix = e instanceof GpuUnavailableError ? "no usable GPU" : "error";
  // citty's own messages carry colour codes: an error line must be plain text
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the ESC that starts a colour code
  return `bunlm: ${prefix}: ${msg.split("\n")[0]!.replace(/\x1b\[[0-9;]*m/g, "")}`;
}

/** Run a command's main; on failure print one line to stderr and exit 1. */
export async function runMain(main: () => Promise<void>): Promise<void> {
  try {
    await main();
    process.exit(0);
  } catch (e) {
    if (Number(process.env.BUNLM_DEBUG ?? 0) >= 1) console.error(e);
    console.error(failLine(e));
    process.exit(1);
  }
}

const resolve = async <T>(x: T | (() => T | Promise<T>)): Promise<T> =>
  typeof x === "function" ? await (x as () => T)() : x;
const camel = (s: string) => s.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());

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
    const aliases = [name, camel(name), ...(def.alias ? (Array.isArray(def.alias) ? def.alias : [def.alias]) : [])];
    for (const a of aliases) {
      names.set(a, name);
      if (def.type === "boolean") names.set(`no-${a}`, name);
      else valued.add(a);
    }
    if (/\brepeat/.test(def.description ?? "")) repeatable.add(name);
    shown.push(name);
  }
  return { names, valued, repeatable, shown };
}

/** The (sub)command rawArgs address, and the args that belong to it. */
async function target(
  cmd: CommandDef<any>,
  rawArgs: string[],
): Promise<{ cmd: CommandDef<any>; args: string[]; path: string[] }> {
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
 * Every value of a repeatable flag (`--callback a.ts --callback b.ts`): citty keeps only the last.
 * undefined when the flag is not given.
 */
export function allValues(rawArgs: string[], flag: string): string[] | undefined {
  const names = [`--${flag}`, `--${camel(flag)}`];
  const out: string[] = [];
  for (let i = 0; i < rawArgs.length; i++) {
    const a = rawArgs[i]!;
    if (a === "--") break;
    const eq = a.indexOf("=");
    if (eq > 0 && names.includes(a.slice(0, eq))) out.push(a.slice(eq + 1));
    else if (names.includes(a) && i + 1 < rawArgs.length) out.push(rawArgs[++i]!);
  }
  return out.length ? out : undefined;
}

/** Refuse flags the command does not define (naming the closest one), and flags given twice. */
export async function checkFlags(cmd: CommandDef<any>, rawArgs: string[]): Promise<void> {
  const t = await target(cmd, rawArgs);
  const spec = flagSpec(await resolve(t.cmd.args ?? {}));
  const meta = await resolve(cmd.meta ?? {});
  const usage = `bun cmd/${(meta as { name?: string }).name}.ts${t.path.map((p) => ` ${p}`).join("")} --help`;
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

/** Entry guard for cmd/*.ts: citty parses and runs; --help prints usage; errors become one line. */
export async function runCli(cmd: CommandDef<any>): Promise<void> {
  const rawArgs = process.argv.slice(2);
  if (rawArgs.includes("--help") || rawArgs.includes("-h")) {
    await showUsage(cmd);
    process.exit(0);
  }
  await runMain(async () => {
    await checkFlags(cmd, rawArgs);
    await runCommand(cmd, { rawArgs });
  });
}
