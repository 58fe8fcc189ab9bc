// Temporary files and directories that a killed process left behind. Every temporary name bunlm
// writes carries its process id (files.ts `FILE.PID.tmp`, checkpoint `.step_N.tmp-PID`, pack
// `OUT.tmp-PID` / `OUT.old-PID`, the `latest` link's `.latest.PID`), so a later command can tell its
// own leftovers from a live process's work in progress: it removes only names of that exact form
// whose process is gone.
import { readdirSync, rmSync } from "node:fs";
import { join } from "node:path";

const PATTERNS = [/^(.*)\.(\d+)\.tmp$/, /^(.*)\.tmp-(\d+)$/, /^(.*)\.old-(\d+)$/, /^\.latest\.(\d+)$/];

/** The pid a temporary name of ours carries, or null when the name is not of that form. */
export function tempPid(name: string): number | null {
  for (const re of PATTERNS) {
    const m = re.exec(name);
    if (m) return Number(m[m.length - 1]);
  }
  return null;
}

export function alive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e: any) {
    return e.code === "EPERM"; // exists, owned by someone else
  }
}

/**
 * Remove the leftovers of dead processes in `dir` whose names start with one of `prefixes` (the
 * names the caller's command writes there, so a user's own "x.2024.tmp" is never touched).
 * Returns the names removed.
 */
export function removeStaleTemps(dir: string, prefixes: string[]): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const gone: string[] = [];
  for (const name of names) {
    if (!prefixes.some((p) => name.startsWith(p))) continue;
    const pid = tempPid(name);
    if (pid === null || alive(pid)) continue;
    rmSync(join(dir, name), { recursive: true, force: true });
    gone.push(name);
  }
  return gone;
}
