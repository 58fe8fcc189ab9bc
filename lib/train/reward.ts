// GRPO rewards from the user: a TS/JS module exporting reward(prompt, response, row) (sync or
// async), or an external command that reads one JSON object {"prompt","response","row"} per line on
// stdin and writes one number per line on stdout (started once, kept for the whole run).
import { resolve } from "node:path";
import { InputError } from "../io/errors.ts";

export type RewardFn = (prompt: string, response: string, row: Record<string, unknown>) => Promise<number>;

export async function rewardFromModule(path: string): Promise<RewardFn> {
  let mod: any;
  try {
    mod = await import(resolve(path));
  } catch (e) {
    throw new InputError(`--reward ${path}: cannot load (${(e as Error).message})`);
  }
  const f = mod.reward ?? mod.default;
  if (typeof f !== "function") throw new InputError(`--reward ${path}: export a function reward(prompt, response, row)`);
  return async (p, r, row) => checkNumber(await f(p, r, row), `--reward ${path}`);
}

function checkNumber(x: unknown, who: string): number {
  const n = typeof x === "string" ? Number(x.trim()) : x;
  if (typeof n !== "number" || !Number.isFinite(n)) throw new InputError(`${who} returned ${JSON.stringify(x)}, not a finite number`);
  return n;
}

export function rewardFromCommand(cmd: string): { fn: RewardFn; close: () => void } {
  const proc = Bun.spawn(["sh", "-c", cmd], { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
  const reader = proc.stdout.getReader();
  const dec = new TextDecoder();
  let buf = "";
  const nextLine = async (): Promise<string> => {
    for (;;) {
      const nl = buf.indexOf("\n");
      if (nl >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        return line;
      }
      const { value, done } = await reader.read();
      if (done) throw new InputError(`--reward-cmd '${cmd}' exited before answering (exit code ${await proc.exited})`);
      buf += dec.decode(value, { stream: true });
    }
  };
  const fn: RewardFn = async (prompt, response, row) => {
    proc.stdin.write(JSON.stringify({ prompt, response, row }) + "\n");
    await proc.stdin.flush();
    return checkNumber(await nextLine(), `--reward-cmd '${cmd}'`);
  };
  return { fn, close: () => { try { proc.stdin.end(); proc.kill(); } catch {} } };
}
