// The one way a command fails: a single line on stderr naming what went wrong, exit code non-zero,
// never a stack trace for a user error (BUNLM_DEBUG=1 shows it).
import { runCommand, showUsage, type CommandDef } from "citty";
import { GpuUnavailableError } from "../gpu/device.ts";

export function failLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  const prefix = e instanceof GpuUnavailableError ? "no usable GPU" : "error";
  return `bunlm: ${prefix}: ${msg.split("\n")[0]}`;
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

/** Entry guard for cmd/*.ts: citty parses and runs; --help prints usage; errors become one line. */
export async function runCli(cmd: CommandDef<any>): Promise<void> {
  const rawArgs = process.argv.slice(2);
  if (rawArgs.includes("--help") || rawArgs.includes("-h")) {
    await showUsage(cmd);
    process.exit(0);
  }
  await runMain(async () => {
    await runCommand(cmd, { rawArgs });
  });
}
