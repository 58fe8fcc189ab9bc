// Dawn writes to file descriptor 2 from native code while it enumerates adapters: two "Warning:
// max...PerPipelineLayout artificially reduced" lines on every run, which would make every command's
// stderr (and so every error) more than one line. JavaScript cannot filter a native write, so around
// adapter acquisition fd 2 points at a temporary file; afterwards what Dawn wrote is passed on to
// stderr except those two known, harmless lines (all of it with --verbose or BUNLM_DEBUG >= 1).
// Linux and macOS through libc's dup/dup2; elsewhere (or if libc cannot be opened) nothing is captured.
import { closeSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { clearStatus, verbose } from "../base/log.ts";

const HARMLESS = /artificially reduced from \d+ to \d+ to fit dynamic offset allocation limit/;

interface Libc {
  dup(fd: number): number;
  dup2(from: number, to: number): number;
  close(fd: number): number;
}

let libc: Libc | null | undefined;

async function loadLibc(): Promise<Libc | null> {
  if (libc !== undefined) return libc;
  try {
    const { dlopen, FFIType } = await import("bun:ffi");
    const name = process.platform === "darwin" ? "libc.dylib" : process.platform === "linux" ? "libc.so.6" : null;
    if (!name) return (libc = null);
    const { symbols } = dlopen(name, {
      dup: { args: [FFIType.i32], returns: FFIType.i32 },
      dup2: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
      close: { args: [FFIType.i32], returns: FFIType.i32 },
    });
    libc = symbols as unknown as Libc;
  } catch {
    libc = null;
  }
  return libc;
}

/**
 * Run f with native writes to fd 2 captured; pass the captured lines on, less Dawn's known noise.
 * When f throws, its error says what went wrong in one line and the native lines (Vulkan's "Found
 * no drivers!" and its source locations) are dropped; --verbose shows them.
 */
export async function filterNativeStderr<T>(f: () => Promise<T>): Promise<T> {
  const c = await loadLibc();
  if (!c) return f();
  const file = join(tmpdir(), `bunlm-stderr-${process.pid}-${Date.now()}.tmp`);
  let fd: number;
  try {
    fd = openSync(file, "w+", 0o600);
  } catch {
    return f(); // no writable temp directory: let the lines through
  }
  const saved = c.dup(2);
  if (saved < 0 || c.dup2(fd, 2) < 0) {
    if (saved >= 0) c.close(saved);
    closeSync(fd);
    rmSync(file, { force: true });
    return f();
  }
  let failed = false;
  try {
    return await f();
  } catch (e) {
    failed = true;
    throw e;
  } finally {
    c.dup2(saved, 2);
    c.close(saved);
    closeSync(fd);
    let text = "";
    try {
      text = readFileSync(file, "utf8");
    } catch {}
    rmSync(file, { force: true });
    const all = verbose();
    const keep = text.split("\n").filter((l) => l && (all || (!failed && !HARMLESS.test(l))));
    if (keep.length) {
      clearStatus();
      process.stderr.write(`${keep.join("\n")}\n`);
    }
  }
}
