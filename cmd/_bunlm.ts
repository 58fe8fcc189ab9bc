// `bunlm X args…` (bin/bunlm) is `bun cmd/X.ts args…`: the same command, run in this process, with the
// same help and exit codes. `bunlm` alone or `bunlm --help` lists the commands, one line each.
import { readdirSync } from "node:fs";
import { join } from "node:path";
import type { CommandDef } from "citty";
import { closest } from "../lib/base/suggest.ts";
import { helpColor, runCli, VERSION } from "./_cli.ts";

const CMD = import.meta.dir;

/** Every command: each cmd/*.ts but the private plumbing (cmd/_*.ts), in pipeline order where known. */
export function commandNames(): string[] {
  const order = [
    "tokenize",
    "pack",
    "pretrain",
    "sft",
    "dpo",
    "grpo",
    "generate",
    "chat",
    "eval",
    "merge",
    "ckpt-inspect",
    "plot",
    "gpu-info",
  ];
  const names = readdirSync(CMD)
    .filter((f) => f.endsWith(".ts") && !f.startsWith("_"))
    .map((f) => f.slice(0, -3));
  const rank = (n: string) => (order.includes(n) ? order.indexOf(n) : order.length);
  return names.sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

export async function loadCommand(name: string): Promise<CommandDef<any>> {
  const mod = await import(join(CMD, `${name}.ts`));
  if (!mod.command) throw new Error(`cmd/${name}.ts exports no \`command\``);
  return mod.command;
}

async function listing(): Promise<string> {
  const color = helpColor();
  const bold = (s: string) => (color ? `\x1b[1m${s}\x1b[22m` : s);
  const rows: string[] = [];
  const names = commandNames();
  const w = Math.max(...names.map((n) => n.length));
  for (const n of names) {
    const meta = (await loadCommand(n)).meta as { description?: string } | undefined;
    rows.push(`  ${n.padEnd(w)}  ${meta?.description ?? ""}`);
  }
  return [
    `${bold("Usage:")} bunlm <command> [options]`,
    "",
    `bunlm ${VERSION}: train decoder-only transformer language models, from raw text to an aligned chat model, on WebGPU.`,
    "",
    bold("Commands:"),
    ...rows,
    "",
    "`bunlm <command> --help` shows a command's options; `bunlm X` is the same as `bun cmd/X.ts`.",
    "",
  ].join("\n");
}

if (import.meta.main) {
  const [name, ...rest] = process.argv.slice(2);
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    process.stdout.write(await listing());
    process.exit(0);
  }
  if (name === "--version" || name === "-V") {
    console.log(`bunlm ${VERSION}`);
    process.exit(0);
  }
  const names = commandNames();
  if (!names.includes(name)) {
    const near = closest(name, names);
    process.stderr.write(
      `bunlm: error: unknown command "${name}"${near ? ` (did you mean ${near}?)` : ""}; \`bunlm --help\` lists the commands\n`,
    );
    process.exit(1);
  }
  await runCli(await loadCommand(name), rest);
}
