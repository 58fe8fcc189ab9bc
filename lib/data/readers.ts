// Document readers: plain text (one document per file, or per line with `lines`), JSONL (a string
// field per row) and parquet (a string column, read with hyparquet, compressed files included), from
// files or stdin ("-"). Streaming: files are read in chunks, so inputs larger than memory pass through.
// Errors name the file and the line (or row) and what was expected.
import { statSync, openSync, readSync, closeSync } from "node:fs";
import { extname } from "node:path";
import { InputError } from "../io/errors.ts";


export type Format = "txt" | "jsonl" | "parquet";

export interface Doc {
  text: string;
  source: string;
  /** 1-based line (txt/jsonl) or row (parquet) number; 0 for a whole-file document */
  index: number;
  /** the JSONL row, when the input is JSONL (its other fields travel along) */
  row?: Record<string, unknown>;
}

export interface ReadOpts {
  field?: string;
  lines?: boolean;
  format?: Format;
  /** called with bytes read so far, for progress */
  onBytes?: (n: number) => void;
}

export function formatOf(path: string, forced?: Format): Format {
  if (forced) return forced;
  const e = extname(path).toLowerCase();
  if (e === ".jsonl" || e === ".ndjson" || e === ".json") return "jsonl";
  if (e === ".parquet") return "parquet";
  return "txt";
}

/** Byte chunks of a file or stdin. */
async function* chunks(path: string): AsyncGenerator<Uint8Array> {
  if (path === "-") {
    for await (const c of Bun.stdin.stream()) yield c as Uint8Array;
    return;
  }
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (e: any) {
    throw new InputError(`${path}: ${e.code === "ENOENT" ? "no such file" : e.code === "EISDIR" ? "is a directory" : e.message}`);
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

/** Lines as byte ranges decoded to strings (invalid UTF-8 becomes U+FFFD); "\r\n" endings are trimmed. */
export async function* lines(path: string, onBytes?: (n: number) => void): AsyncGenerator<string> {
  const dec = new TextDecoder("utf-8", { fatal: false });
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
      yield dec.decode(data.subarray(start, end));
      start = i + 1;
    }
    carry = data.slice(start);
  }
  if (carry.length) yield dec.decode(carry[carry.length - 1] === 13 ? carry.subarray(0, -1) : carry);
}

async function wholeText(path: string, onBytes?: (n: number) => void): Promise<string> {
  const parts: Uint8Array[] = [];
  let total = 0;
  for await (const c of chunks(path)) {
    parts.push(c);
    total += c.length;
    onBytes?.(total);
  }
  return new TextDecoder("utf-8", { fatal: false }).decode(Buffer.concat(parts));
}

export function fieldOf(row: unknown, field: string, source: string, index: number): string {
  if (row === null || typeof row !== "object" || Array.isArray(row)) throw new InputError(`${source}:${index}: expected a JSON object, got ${JSON.stringify(row).slice(0, 60)}`);
  const v = (row as Record<string, unknown>)[field];
  if (v === undefined) throw new InputError(`${source}:${index}: no field "${field}" (fields: ${Object.keys(row).join(", ") || "none"}); choose one with --field`);
  if (typeof v !== "string") throw new InputError(`${source}:${index}: field "${field}" is ${v === null ? "null" : typeof v}, expected a string`);
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

/** Rows of a parquet file as objects, one row group at a time (memory bounded by the largest group). */
export async function* parquetRows(path: string, columns?: string[], onBytes?: (n: number) => void): AsyncGenerator<{ row: Record<string, unknown>; index: number }> {
  const { parquetMetadataAsync, parquetReadObjects } = await import("hyparquet");
  const { compressors } = await import("hyparquet-compressors");
  let size: number;
  try {
    size = statSync(path).size;
  } catch {
    throw new InputError(`${path}: no such file`);
  }
  const fd = openSync(path, "r");
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
    let meta;
    try {
      meta = await parquetMetadataAsync(file);
    } catch (e) {
      throw new InputError(`${path}: not a parquet file (${(e as Error).message})`);
    }
    const names = topLevelColumns(meta.schema as any[]);
    for (const c of columns ?? [])
      if (!names.includes(c)) throw new InputError(`${path}: no column "${c}" (columns: ${names.join(", ")}); choose one with --field`);
    let rowStart = 0;
    for (const rg of meta.row_groups) {
      const rowEnd = rowStart + Number(rg.num_rows);
      const rows = (await parquetReadObjects({ file, metadata: meta, columns, rowStart, rowEnd, compressors })) as Record<string, unknown>[];
      for (let i = 0; i < rows.length; i++) yield { row: rows[i]!, index: rowStart + i + 1 };
      rowStart = rowEnd;
      onBytes?.(Math.round((rowEnd / Math.max(1, Number(meta.num_rows))) * size));
    }
  } finally {
    closeSync(fd);
  }
}

async function* parquetDocs(path: string, field: string, onBytes?: (n: number) => void): AsyncGenerator<Doc> {
  for await (const { row, index } of parquetRows(path, [field], onBytes)) {
    const v = row[field];
    if (typeof v !== "string") throw new InputError(`${path}: row ${index}: column "${field}" is ${v === null ? "null" : typeof v}, expected a string`);
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
  const field = opts.field ?? "text";
  for (const path of inputs) {
    const source = path === "-" ? "<stdin>" : path;
    const fmt = formatOf(path, opts.format);
    if (fmt === "jsonl") {
      let index = 0;
      for await (const line of lines(path, opts.onBytes)) {
        index++;
        if (line.trim() === "") continue;
        const row = parseJsonLine(line, source, index);
        if (row === null || typeof row !== "object" || Array.isArray(row)) throw new InputError(`${source}:${index}: expected a JSON object`);
        yield { row: row as Record<string, unknown>, source, index };
      }
    } else if (fmt === "parquet") {
      for await (const { row, index } of parquetRows(path, undefined, opts.onBytes)) yield { row, source, index };
    } else {
      for await (const d of readDocs([path], { ...opts, format: "txt" })) yield { row: { [field]: d.text }, source, index: d.index };
    }
  }
}

/** Every document of every input, in order. */
export async function* readDocs(inputs: string[], opts: ReadOpts = {}): AsyncGenerator<Doc> {
  const field = opts.field ?? "text";
  let before = 0;
  for (const path of inputs) {
    const source = path === "-" ? "<stdin>" : path;
    const onBytes = opts.onBytes ? (n: number) => opts.onBytes!(before + n) : undefined;
    const fmt = formatOf(path, opts.format);
    let last = 0;
    const track = (n: number) => {
      last = n;
      onBytes?.(n);
    };
    if (fmt === "parquet") {
      if (path === "-") throw new InputError("parquet cannot be read from stdin; give the file's path");
      yield* parquetDocs(path, field, track);
    } else if (fmt === "jsonl") {
      let index = 0;
      for await (const line of lines(path, track)) {
        index++;
        if (line.trim() === "") continue;
        const row = parseJsonLine(line, source, index);
        yield { text: fieldOf(row, field, source, index), source, index, row: row as Record<string, unknown> };
      }
    } else if (opts.lines) {
      let index = 0;
      for await (const line of lines(path, track)) {
        index++;
        if (line.length) yield { text: line, source, index };
      }
    } else {
      yield { text: await wholeText(path, track), source, index: 0 };
    }
    before += last;
  }
}
