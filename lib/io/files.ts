// Opening the files a command is given, safely: names that an index or a manifest lists must be plain
// file names in its own directory (no "../", no absolute paths), random-access files (safetensors,
// JSON) must be regular files (a FIFO would block the open forever, a device would never end), and
// every write goes to a temporary name that is renamed into place and removed if the write fails
// (a full disk leaves no 0-byte file behind).
import { closeSync, constants, fstatSync, openSync, readSync, renameSync, rmSync, writeSync } from "node:fs";
import { basename } from "node:path";
import { InputError } from "../base/errors.ts";
import { Crc32, type FileSum } from "./checksum.ts";
import { tempFile } from "./stale.ts";

/** Why opening a path failed, in words (Node's own messages name syscalls, not causes). */
export function openFailure(e: { code?: string; message?: string }): string {
  switch (e.code) {
    case "ENOENT":
      return "no such file";
    case "EISDIR":
      return "is a directory";
    case "EACCES":
    case "EPERM":
      return "permission denied";
    case "ELOOP":
      return "a symbolic link that loops";
    case "ENOTDIR":
      return "a part of the path is not a directory";
    case "ENAMETOOLONG":
      return "the name is too long";
    default:
      return e.message ?? String(e);
  }
}

/** `name` as listed in `where` (an index or manifest file): a plain file name in the same directory. */
export function plainName(name: unknown, where: string): string {
  if (
    typeof name !== "string" ||
    name === "" ||
    name === "." ||
    name === ".." ||
    name !== basename(name) ||
    name.includes("\\") ||
    name.includes("\0")
  )
    throw new InputError(`${where}: lists ${JSON.stringify(name)}, which is not a plain file name in its directory`);
  return name;
}

function describe(mode: number): string {
  const t = mode & constants.S_IFMT;
  if (t === constants.S_IFDIR) return "a directory";
  if (t === constants.S_IFIFO) return "a FIFO";
  if (t === constants.S_IFCHR || t === constants.S_IFBLK) return "a device";
  if (t === constants.S_IFSOCK) return "a socket";
  return "not a regular file";
}

/**
 * Open `path` for reading only if it is a regular file (symlinks to one are fine: Hugging Face's
 * cache is made of them). O_NONBLOCK makes opening a FIFO return at once instead of waiting for a
 * writer, so it can be refused.
 */
export function openRegular(path: string): number {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e: any) {
    throw new InputError(`${path}: ${openFailure(e)}`);
  }
  const st = fstatSync(fd);
  if (!st.isFile()) {
    closeSync(fd);
    throw new InputError(`${path}: is ${describe(st.mode)}, expected a regular file`);
  }
  return fd;
}

/** The whole content of a regular file. */
export function readRegular(path: string): Buffer {
  const fd = openRegular(path);
  try {
    const size = fstatSync(fd).size;
    const buf = Buffer.allocUnsafe(size);
    let at = 0;
    while (at < size) {
      const n = readSync(fd, buf, at, size - at, at);
      if (n <= 0) break;
      at += n;
    }
    return at === size ? buf : buf.subarray(0, at);
  } finally {
    closeSync(fd);
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * A JSON file, parsed: one line naming the file when it is missing, not a regular file, not UTF-8 or
 * not JSON. `missing` replaces "no such file" (e.g. "no config.json (not a model directory)").
 */
export function readJson(path: string, missing?: string): unknown {
  let buf: Buffer;
  try {
    buf = readRegular(path);
  } catch (e) {
    if (missing && e instanceof InputError && e.message.endsWith(": no such file"))
      throw new InputError(`${path}: ${missing}`);
    throw e;
  }
  let text: string;
  try {
    text = utf8.decode(buf);
  } catch {
    throw new InputError(`${path}: not UTF-8 text (is it a JSON file?)`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new InputError(`${path}: not valid JSON (${(e as Error).message})`);
  }
}

/** A JSON object file (not an array or a scalar). */
export function readJsonObject(path: string, missing?: string): Record<string, unknown> {
  const j = readJson(path, missing);
  if (!j || typeof j !== "object" || Array.isArray(j)) throw new InputError(`${path}: expected a JSON object`);
  return j as Record<string, unknown>;
}

/**
 * Write `parts` to `path` atomically (temporary file, then rename); on failure (a full disk) the
 * temporary file is removed and the error names the file. Returns the size and CRC-32 written.
 */
export function writeFileAtomic(path: string, parts: string | Uint8Array | (string | Uint8Array)[]): FileSum {
  const tmp = tempFile(path);
  const crc = new Crc32();
  let fd: number | null = null;
  try {
    fd = openSync(tmp, "w");
    for (const p of Array.isArray(parts) ? parts : [parts]) {
      const b = typeof p === "string" ? Buffer.from(p) : p;
      crc.update(b);
      let at = 0;
      while (at < b.byteLength) at += writeSync(fd, b, at, b.byteLength - at);
    }
    closeSync(fd);
    fd = null;
    renameSync(tmp, path);
  } catch (e: any) {
    if (fd !== null)
      try {
        closeSync(fd);
      } catch {}
    rmSync(tmp, { force: true });
    if (e.code === "ENOSPC") throw new InputError(`${path}: no space left on the device; nothing was written`);
    if (e.code === "EACCES" || e.code === "EROFS")
      throw new InputError(
        `${path}: cannot write (${e.code === "EROFS" ? "read-only file system" : "permission denied"})`,
      );
    throw e;
  }
  return crc.sum();
}

const CHUNK = 8 << 20;

/** Size and CRC-32 of a regular file, read in chunks. */
export function fileSum(path: string): FileSum {
  const fd = openRegular(path);
  try {
    const size = fstatSync(fd).size;
    const buf = new Uint8Array(Math.min(CHUNK, Math.max(1, size)));
    const crc = new Crc32();
    for (let at = 0; at < size; ) {
      const n = readSync(fd, buf, 0, Math.min(buf.length, size - at), at);
      if (n <= 0) break;
      crc.update(buf.subarray(0, n));
      at += n;
    }
    return crc.sum();
  } finally {
    closeSync(fd);
  }
}

/** Refuse `path` when its size or CRC-32 differs from what `where` recorded. */
export function verifyFile(path: string, want: FileSum, where: string): void {
  const got = fileSum(path);
  if (got.bytes !== want.bytes)
    throw new InputError(
      `${path}: ${got.bytes} bytes, but ${where} recorded ${want.bytes} (truncated or replaced since it was written)`,
    );
  if (got.crc32 !== want.crc32)
    throw new InputError(
      `${path}: CRC-32 ${got.crc32} differs from ${want.crc32} that ${where} recorded (the file is corrupted or was replaced)`,
    );
}
