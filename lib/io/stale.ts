// Temporary files and directories, and the ones a killed process left behind. Every temporary name
// bunlm writes carries a "bunlm-" marker and its process id (tempFile, tempDir, asideDir below), so a
// later command can tell its own leftovers from a live process's work in progress and from a user's
// file that merely looks similar: it removes only names of exactly that form, of processes that are
// gone, and (for directories) only when they hold nothing but what the command writes.
import { lstatSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";

/** Where a file is written before it is renamed into place. */
export const tempFile = (path: string) => `${path}.bunlm-${process.pid}.tmp`;
/** Where a directory is built before it is renamed into place. */
export const tempDir = (path: string) => `${path}.bunlm-tmp-${process.pid}`;
/** Where an earlier output waits while its replacement is swapped in. */
export const asideDir = (path: string) => `${path}.bunlm-old-${process.pid}`;

const TEMP = /\.bunlm-(?:tmp-|old-)?(\d+)(?:\.tmp)?$/;

/** The pid a temporary name of ours carries, or null when the name is not of that form. */
export function tempPid(name: string): number | null {
  const m = TEMP.exec(name);
  return m ? Number(m[1]) : null;
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
 * names the caller's command writes there). A directory goes only if every name in it passes
 * `inside` (what the command writes into such a directory). Returns the names removed.
 */
export function removeStaleTemps(
  dir: string,
  prefixes: string[],
  inside: (name: string) => boolean = () => false,
): string[] {
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
    const path = join(dir, name);
    const st = lstatSync(path);
    if (st.isDirectory() && !readdirSync(path).every(inside)) continue;
    if (!st.isDirectory() && !st.isFile() && !st.isSymbolicLink()) continue;
    rmSync(path, { recursive: true, force: true });
    gone.push(name);
  }
  return gone;
}
