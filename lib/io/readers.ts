// Document readers: plain text (one document per file, or per line with `lines`), JSONL (a string
// field per row) and parquet (a string column, read with hyparquet, compressed files included), from
// files or stdin ("-"). Streaming: files are read in chunks, so inputs larger than memory pass through.
// Errors name the file and the line (or row) and what was expected. Text must be valid UTF-8: a bad
// byte is refused with its line and byte offset, unless the caller passes `lossy`, which replaces each
// invalid sequence with U+FFFD (as TextDecoder does) and counts them.
import { statSync, openSync, readSync, closeSync } from "node:fs";
import { extname } from "node:path";
import { InputError } from "../base/errors.ts";
import { openFailure } from "./files.ts";

export type Format = "txt" | "jsonl" | "parquet";

export interface Doc {
  text: string;
  source: string;
  /** 1-based line (txt/jsonl) or row (parquet) number; 0 for a whole-file document */
  index: number;
  /** the JSONL row, when the input is JSONL (its other fields travel along) */
  row?: Record<string, unknown>;
}

/** Replace invalid UTF-8 instead of refusing it; `replaced` counts the U+FFFD characters put in. */
export interface Lossy {
  replaced: number;
}

export interface ReadOpts {
  field?: string;
  lines?: boolean;
  format?: Format;
  /** called with bytes read so far, for progress */
  onBytes?: (n: number) => void;
  lossy?: Lossy;
}

export interface LineOpts {
  onBytes?: (n: number) => void;
  lossy?: Lossy;
}

const strict = new TextDecoder("utf-8", { fatal: true });
const loose = new TextDecoder("utf-8", { fatal: false });

/**
 * The first invalid UTF-8 sequence at or after `from`, as WHATWG's decoder sees it: `len` bytes (a lead
 * and the continuation bytes that were valid before the break) that become one U+FFFD.
 */
export function invalidUtf8(b: Uint8Array, from = 0): { at: number; len: number } | null {
  const n = b.length;
  for (let i = from; i < n; ) {
    const c = b[i]!;
    if (c < 0x80) {
      i++;
      continue;
    }
    let need: number,
      lo = 0x80,
      hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) need = 1;
    else if (c >= 0xe0 && c <= 0xef) {
      need = 2;
      if (c === 0xe0) lo = 0xa0; // overlong
      if (c === 0xed) hi = 0x9f; // surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
      need = 3;
      if (c === 0xf0) lo = 0x90; // overlong
      if (c === 0xf4) hi = 0x8f; // past U+10FFFF
    } else return { at: i, len: 1 };
    for (let k = 1; k <= need; k++) {
      const d = b[i + k];
      if (d === undefined || d < lo || d > hi) return { at: i, len: k };
      lo = 0x80;
      hi = 0xbf;
    }
    i += need + 1;
  }
  return null;
}

function countInvalid(b: Uint8Array): number {
  let n = 0;
  for (let bad = invalidUtf8(b); bad; bad = invalidUtf8(b, bad.at + bad.len)) n++;
  return n;
}

/** The bytes the offending lead byte announces (e.g. "e2 28 a1"), stopping at a line end. */
function shownBytes(b: Uint8Array, at: number): string {
  const c = b[at]!;
  const want = c >= 0xf8 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
  const out: string[] = [];
  for (let i = at; i < Math.min(b.length, at + want) && (i === at || b[i] !== 10); i++)
    out.push(b[i]!.toString(16).padStart(2, "0"));
  return out.join(" ");
}

const LOSSY_HINT = "fix the file or pass --lossy to replace invalid bytes with U+FFFD";

/**
 * Bytes → text. The fast path is one fatal decode; only when it fails is the position looked for, to
 * refuse with `where(offset)` naming it, or (lossy) to count what the replacing decode puts in.
 */
function decodeText(b: Uint8Array, lossy: Lossy | undefined, where: (at: number) => string): string {
  try {
    return strict.decode(b);
  } catch {}
  if (lossy) {
    lossy.replaced += countInvalid(b);
    return loose.decode(b);
  }
  const bad = invalidUtf8(b)!;
  throw new InputError(`${where(bad.at)}: invalid UTF-8 (bytes ${shownBytes(b, bad.at)}); ${LOSSY_HINT}`);
}

/** 1-based line and byte within it of offset `at` in a whole file. */
function lineAndByte(b: Uint8Array, at: number): string {
  let line = 1,
    start = 0;
  for (let i = b.indexOf(10); i >= 0 && i < at; i = b.indexOf(10, i + 1)) {
    line++;
    start = i + 1;
  }
  return `${line}:${at - start + 1}`;
}

export function formatOf(path: string, forced?: Format): Format {
  if (forced) return forced;
  const e = extname(path).toLowerCase();
  if (e === ".jsonl" || e === ".ndjson" || e === ".json") return "jsonl";
  if (e === ".parquet") return "parquet";
  return "txt";
}

/** Byte chunks of a file or stdin. */
// stdin is read once, through one reader; its first chunk may be looked at first (formatOfStdin)
let stdin: ReadableStreamDefaultReader<Uint8Array> | null = null;
const stdinHead: Uint8Array[] = [];

async function stdinChunk(): Promise<Uint8Array | null> {
  if (stdinHead.length) return stdinHead.shift()!;
  stdin ??= Bun.stdin.stream().getReader() as ReadableStreamDefaultReader<Uint8Array>;
  const { value, done } = await stdin.read();
  return done ? null : value;
}

const BOM = [0xef, 0xbb, 0xbf];

/**
 * What stdin holds when no --format says: JSONL when its first non-blank byte opens a JSON object
 * (`tokenize encode | pack seq -` must not pack the JSON text as a document), else text. A UTF-8 byte
 * order mark (Windows editors write one) is passed over, as the decoder drops it.
 */
async function formatOfStdin(): Promise<Format> {
  let at = 0,
    bom = true;
  for (;;) {
    const c = await stdinChunk();
    if (!c) return "txt";
    stdinHead.push(c);
    for (const b of c) {
      bom &&= at < 3 && b === BOM[at];
      at++;
      if (bom || b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d) continue;
      return b === 0x7b ? "jsonl" : "txt";
    }
  }
}

/** The input's format: forced, by extension, or for stdin by its first byte. */
async function formatFor(path: string, forced?: Format): Promise<Format> {
  const f = forced ?? (path === "-" ? await formatOfStdin() : formatOf(path));
  if (f === "parquet" && path === "-") throw new InputError("parquet cannot be read from stdin; give the file's path");
  return f;
}

/**
 * A JSONL line parsed. Stdin read as JSONL only because it starts with "{" may be text that happens
 * to (code, a template): its refusal says how to read it as text instead.
 */
function jsonRow(line: string, source: string, index: number, guessed: boolean): unknown {
  try {
    return parseJsonLine(line, source, index);
  } catch (e) {
    if (!guessed) throw e;
    throw new InputError(
      `${(e as Error).message}; stdin starts with "{", so it is read as JSONL: give --format txt to read it as text`,
    );
  }
}

async function* chunks(path: string): AsyncGenerator<Uint8Array> {
  if (path === "-") {
    for (let c = await stdinChunk(); c; c = await stdinChunk()) yield c;
    return;
  }
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (e: any) {
    throw new InputError(`${path}: ${openFailure(e)}`);
  }
  try {
    const buf = new Uint8Array(1 << 20);
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n <= 0) break;
      yield buf.slice(0, n);
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * Lines as byte ranges decoded to strings; "\r\n" endings are trimmed. Splitting on the byte 0x0A is
 * safe before decoding: it never occurs inside a multi-byte UTF-8 sequence.
 */
export async function* lines(path: string, opts: LineOpts = {}): AsyncGenerator<string> {
  const { onBytes, lossy } = opts;
  const source = path === "-" ? "<stdin>" : path;
  let line = 0;
  const dec = (b: Uint8Array) => {
    line++;
    return decodeText(b, lossy, (at) => `${source}:${line}:${at + 1}`);
  };
  let carry = new Uint8Array(0);
  let total = 0;
  for await (const c of chunks(path)) {
    total += c.length;
    onBytes?.(total);
    let data = c;
    if (carry.length) {
      data = new Uint8Array(carry.length + c.length);
      data.set(carry);
      data.set(c, carry.length);
    }
    let start = 0;
    for (let i = data.indexOf(10); i >= 0; i = data.indexOf(10, start)) {
      const end = i > start && data[i - 1] === 13 ? i - 1 : i;
      yield dec(data.subarray(start, end));
      start = i + 1;
    }
    carry = data.slice(start);
  }
  if (carry.length) yield dec(carry[carry.length - 1] === 13 ? carry.subarray(0, -1) : carry);
}

async function wholeText(path: string, onBytes?: (n: number) => void, lossy?: Lossy): Promise<string> {
  const parts: Uint8Array[] = [];
  let total = 0;
  for await (const c of chunks(path)) {
    parts.push(c);
    total += c.length;
    onBytes?.(total);
  }
  const all = Buffer.concat(parts);
  return decodeText(all, lossy, (at) => `${path === "-" ? "<stdin>" : path}:${lineAndByte(all, at)}`);
}

export function fieldOf(row: unknown, field: string, source: string, index: number): string {
  if (row === null || typeof row !== "object" || Array.isArray(row))
    throw new InputError(`${source}:${index}: expected a JSON object, got ${JSON.stringify(row).slice(0, 60)}`);
  const v = (row as Record<string, unknown>)[field];
  if (v === undefined)
    throw new InputError(
      `${source}:${index}: no field "${field}" (fields: ${Object.keys(row).join(", ") || "none"}); choose one with --field`,
    );
  if (typeof v !== "string")
    throw new InputError(
      `${source}:${index}: field "${field}" is ${v === null ? "null" : typeof v}, expected a string`,
    );
  return v;
}

export function parseJsonLine(line: string, source: string, index: number): unknown {
  try {
    return JSON.parse(line);
  } catch (e) {
    throw new InputError(`${source}:${index}: not valid JSON (${(e as Error).message})`);
  }
}

// The flat parquet schema lists the root, then every element depth-first; the root's direct
// children are the columns a row object has.
function topLevelColumns(schema: { name: string; num_children?: number }[]): string[] {
  const out: string[] = [];
  let i = 1;
  const skip = (): void => {
    const n = schema[i]!.num_children ?? 0;
    i++;
    for (let k = 0; k < n; k++) skip();
  };
  for (let c = 0; c < (schema[0]?.num_children ?? 0); c++) {
    out.push(schema[i]!.name);
    skip();
  }
  return out;
}

/** A parquet string whose bytes are not UTF-8, kept as bytes until its row and column are known. */
class BadText {
  constructor(readonly bytes: Uint8Array) {}
}

/**
 * Put the text in place of every BadText in a row (lossy), or refuse the first one naming its row,
 * column and byte. Dictionary pages share one BadText among many rows, so each row counts its own.
 */
function fixBadText(v: unknown, at: string, where: string, lossy: Lossy | undefined): unknown {
  if (v instanceof BadText) return decodeText(v.bytes, lossy, (b) => `${where}: column "${at}", byte ${b + 1}`);
  if (Array.isArray(v)) for (let i = 0; i < v.length; i++) v[i] = fixBadText(v[i], `${at}[${i}]`, where, lossy);
  else if (v !== null && typeof v === "object" && Object.getPrototypeOf(v) === Object.prototype)
    for (const [k, x] of Object.entries(v))
      (v as Record<string, unknown>)[k] = fixBadText(x, at ? `${at}.${k}` : k, where, lossy);
  return v;
}

/** Rows of a parquet file as objects, one row group at a time (memory bounded by the largest group). */
export async function* parquetRows(
  path: string,
  columns?: string[],
  onBytes?: (n: number) => void,
  lossy?: Lossy,
): AsyncGenerator<{ row: Record<string, unknown>; index: number }> {
  const { parquetMetadataAsync, parquetReadObjects } = await import("hyparquet");
  const { compressors } = await import("hyparquet-compressors");
  let size: number;
  try {
    size = statSync(path).size;
  } catch {
    throw new InputError(`${path}: no such file`);
  }
  const fd = openSync(path, "r");
  // hyparquet's own string parser decodes with replacement; this one keeps invalid bytes for fixBadText
  let sawBad = false;
  const parsers = {
    stringFromBytes(bytes: Uint8Array | undefined): unknown {
      if (!bytes) return bytes;
      try {
        return strict.decode(bytes);
      } catch {
        sawBad = true;
        return new BadText(bytes);
      }
    },
  };
  try {
    const file = {
      byteLength: size,
      async slice(start: number, end?: number): Promise<ArrayBuffer> {
        const n = (end ?? size) - start;
        const b = new Uint8Array(n);
        readSync(fd, b, 0, n, start);
        return b.buffer;
      },
    };
    let meta: Awaited<ReturnType<typeof parquetMetadataAsync>>;
    try {
      meta = await parquetMetadataAsync(file);
    } catch (e) {
      throw new InputError(`${path}: not a parquet file (${(e as Error).message})`);
    }
    const names = topLevelColumns(meta.schema as any[]);
    for (const c of columns ?? [])
      if (!names.includes(c))
        throw new InputError(`${path}: no column "${c}" (columns: ${names.join(", ")}); choose one with --field`);
    let rowStart = 0;
    for (const rg of meta.row_groups) {
      const rowEnd = rowStart + Number(rg.num_rows);
      sawBad = false;
      const rows = (await parquetReadObjects({
        file,
        metadata: meta,
        columns,
        rowStart,
        rowEnd,
        compressors,
        parsers,
      })) as Record<string, unknown>[];
      if (sawBad) rows.forEach((r, i) => fixBadText(r, "", `${path}: row ${rowStart + i + 1}`, lossy));
      for (let i = 0; i < rows.length; i++) yield { row: rows[i]!, index: rowStart + i + 1 };
      rowStart = rowEnd;
      onBytes?.(Math.round((rowEnd / Math.max(1, Number(meta.num_rows))) * size));
    }
  } finally {
    closeSync(fd);
  }
}

async function* parquetDocs(
  path: string,
  field: string,
  onBytes?: (n: number) => void,
  lossy?: Lossy,
): AsyncGenerator<Doc> {
  for await (const { row, index } of parquetRows(path, [field], onBytes, lossy)) {
    const v = row[field];
    if (typeof v !== "string")
      throw new InputError(
        `${path}: row ${index}: column "${field}" is ${v === null ? "null" : typeof v}, expected a string`,
      );
    yield { text: v, source: path, index };
  }
}

export interface RowRecord {
  row: Record<string, unknown>;
  source: string;
  index: number;
}

/**
 * Every input as row objects: JSONL lines and parquet rows as they are; a text document as
 * {[field]: text}. For commands whose rows are not plain text (conversations, preference pairs).
 */
export async function* readRows(inputs: string[], opts: ReadOpts = {}): AsyncGenerator<RowRecord> {
  stdinOnce(inputs);
  const field = opts.field ?? "text";
  for (const path of inputs) {
    const source = path === "-" ? "<stdin>" : path;
    const fmt = await formatFor(path, opts.format);
    if (fmt === "jsonl") {
      const guessed = path === "-" && !opts.format;
      let index = 0;
      for await (const line of lines(path, { onBytes: opts.onBytes, lossy: opts.lossy })) {
        index++;
        if (line.trim() === "") continue;
        const row = jsonRow(line, source, index, guessed);
        if (row === null || typeof row !== "object" || Array.isArray(row))
          throw new InputError(`${source}:${index}: expected a JSON object`);
        yield { row: row as Record<string, unknown>, source, index };
      }
    } else if (fmt === "parquet") {
      for await (const { row, index } of parquetRows(path, undefined, opts.onBytes, opts.lossy))
        yield { row, source, index };
    } else {
      for await (const d of readDocs([path], { ...opts, format: "txt" }))
        yield { row: { [field]: d.text }, source, index: d.index };
    }
  }
}

/**
 * Refuse "-" given more than once, before anything is read: the second would find stdin at its end
 * and pass for an empty document.
 */
export function stdinOnce(inputs: string[]): void {
  if (inputs.indexOf("-") !== inputs.lastIndexOf("-"))
    throw new InputError("- (stdin) is given twice; it can be read once");
}

/** Every document of every input, in order. */
export async function* readDocs(inputs: string[], opts: ReadOpts = {}): AsyncGenerator<Doc> {
  stdinOnce(inputs);
  const field = opts.field ?? "text";
  let before = 0;
  for (const path of inputs) {
    const source = path === "-" ? "<stdin>" : path;
    const onBytes = opts.onBytes ? (n: number) => opts.onBytes!(before + n) : undefined;
    const fmt = await formatFor(path, opts.format);
    let last = 0;
    const track = (n: number) => {
      last = n;
      onBytes?.(n);
    };
    if (fmt === "parquet") {
      yield* parquetDocs(path, field, track, opts.lossy);
    } else if (fmt === "jsonl") {
      const guessed = path === "-" && !opts.format;
      let index = 0;
      for await (const line of lines(path, { onBytes: track, lossy: opts.lossy })) {
        index++;
        if (line.trim() === "") continue;
        const row = jsonRow(line, source, index, guessed);
        yield { text: fieldOf(row, field, source, index), source, index, row: row as Record<string, unknown> };
      }
    } else if (opts.lines) {
      let index = 0;
      for await (const line of lines(path, { onBytes: track, lossy: opts.lossy })) {
        index++;
        if (line.length) yield { text: line, source, index };
      }
    } else {
      yield { text: await wholeText(path, track, opts.lossy), source, index: 0 };
    }
    before += last;
  }
}
