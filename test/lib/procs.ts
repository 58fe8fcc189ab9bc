// Whether a process still runs, for tests that check a command leaves nothing behind.
import { readFileSync } from "node:fs";

/** Running, not merely a zombie nobody reaped (a container's init may not reap orphans). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}
