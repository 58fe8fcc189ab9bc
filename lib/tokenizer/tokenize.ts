// What `tokenize` runs over its inputs: train (a tokenizer into an output directory), encode (documents
// or conversations → {"ids":[...]} records) and decode ({"ids":[...]} records → {"text":...}), each
// returning its summary line. Records go to the caller's sink, so the command alone writes stdout.
// Inputs are .txt, .jsonl or .parquet files, or "-" for stdin, read as JSONL when its first non-blank
// byte is "{" (lib/io/readers.ts); flags arrive as the command line gave them and are checked here,
// each error naming its flag.
import { statSync } from "node:fs";
import * as v from "valibot";
import { InputError } from "../base/errors.ts";
import { log } from "../base/log.ts";
import { checkOutDir } from "../io/out_dir.ts";
import { progress } from "../io/progress.ts";
import { type Format, type Lossy, lines, parseJsonLine, readDocs, stdinOnce } from "../io/readers.ts";
import { removeStaleTemps } from "../io/stale.ts";
import { num, validate } from "../io/validate.ts";
import { encodeChat, type Message, ROLES } from "./chat_template.ts";
import { EncodePool } from "./encode_pool.ts";
import { tokenRoles } from "./roles.ts";
import type { Tokenizer } from "./tokenizer.ts";
import { minVocab, TOKENIZER_FILES, trainTokenizer } from "./train.ts";

/** The input flags train and encode share; `format` "auto" means by extension, or by stdin's first byte. */
export interface InputArgs {
  field: string;
  lines: boolean;
  format: "auto" | Format;
  lossy: boolean;
}

export interface TrainArgs extends InputArgs {
  out: string;
  overwrite: boolean;
  "vocab-size": string;
  "min-frequency": string;
  /** every --special given; each may hold several tokens separated by commas */
  special: string[];
}

export interface EncodeArgs extends InputArgs {
  "add-eos": boolean;
  chat: boolean;
  /** a whole number, or "auto": all cores for inputs over 4 MB, else none */
  threads: string;
}

export interface DecodeArgs {
  "skip-special": boolean;
  lossy: boolean;
}

export interface Summary {
  event: "summary";
  documents: number;
  bytes: number;
  tokens: number;
  seconds: number;
  bytes_per_token: number;
  /** only with --lossy: the U+FFFD characters put in place of invalid UTF-8 */
  replaced_invalid_utf8?: number;
}

export interface TrainSummaryLine extends Summary {
  vocab_size: number;
  merges: number;
  out: string;
}

/** Where records go: the command passes stdout's writer, a test an array's push. */
export interface Sink {
  write(line: string): unknown;
}

/** The INPUT arguments; `stdinByDefault` (decode) reads stdin when none is given. */
export function inputsOf(positionals: string[], stdinByDefault = false): string[] {
  if (positionals.length === 0) {
    if (stdinByDefault) return ["-"];
    throw new InputError("no INPUT given (files, or - for stdin)");
  }
  stdinOnce(positionals);
  return positionals;
}

const badWhole = (i: { received: string }) => `expected a whole number, got ${i.received}`;
const whole = (min: number, tooSmall: (n: number) => string) =>
  v.pipe(
    v.number(badWhole),
    v.integer(badWhole),
    v.minValue(min, (i) => tooSmall(i.input as number)),
  );

const lossyOf = (on: boolean): Lossy | undefined => (on ? { replaced: 0 } : undefined);

function summary(t0: number, documents: number, bytes: number, tokens: number, lossy: Lossy | undefined): Summary {
  return {
    event: "summary",
    documents,
    bytes,
    tokens,
    seconds: +((performance.now() - t0) / 1000).toFixed(3),
    bytes_per_token: +(bytes / Math.max(tokens, 1)).toFixed(3),
    ...(lossy ? { replaced_invalid_utf8: lossy.replaced } : {}),
  };
}

/** The inputs' total size for the progress line's percentage; undefined when stdin is among them. */
function totalBytes(inputs: string[]): number | undefined {
  let n = 0;
  for (const p of inputs) {
    if (p === "-") return undefined;
    try {
      n += statSync(p).size;
    } catch {
      return undefined; // the reader names the missing file
    }
  }
  return n;
}

function docsOf(inputs: string[], a: InputArgs, lossy: Lossy | undefined, onBytes: (n: number) => void) {
  const format = a.format === "auto" ? undefined : a.format;
  return readDocs(inputs, { field: a.field, lines: a.lines, format, lossy, onBytes });
}

/** Train a tokenizer on the inputs into `out` (new, empty, or an earlier one with --overwrite). */
export async function tokenizeTrain(inputs: string[], a: TrainArgs): Promise<TrainSummaryLine> {
  const t0 = performance.now();
  const specials = a.special.flatMap((s) => s.split(",")).filter(Boolean);
  const floor = minVocab(specials);
  const o = validate(
    v.object({
      "vocab-size": whole(
        floor,
        (n) => `${n} is too small: the 256 byte tokens and ${floor - 256} special tokens need at least ${floor}`,
      ),
      "min-frequency": whole(1, (n) => `${n} is too small: a pair must occur at least once to be merged`),
    }),
    { "vocab-size": num(a["vocab-size"]), "min-frequency": num(a["min-frequency"]) },
  );
  const gone = removeStaleTemps(
    a.out,
    TOKENIZER_FILES.map((f) => `.${f}.`),
  );
  if (gone.length) log.info(`note: ${a.out}: removed ${gone.join(", ")}, left by a tokenize that was killed`);
  checkOutDir(a.out, {
    flag: "--out",
    command: "tokenize train",
    overwrite: a.overwrite,
    isEarlier: (dir, entries) => {
      const other = entries.filter((e) => !TOKENIZER_FILES.includes(e));
      if (other.length)
        throw new InputError(
          `--out: ${dir} holds files that \`tokenize train\` did not write (${other.slice(0, 3).join(", ")}); give a new or empty directory`,
        );
      return true;
    },
  });
  const total = totalBytes(inputs);
  const lossy = lossyOf(a.lossy);
  const reading = progress("reading");
  const merging = progress("merges", "");
  let merged = false;
  try {
    const s = await trainTokenizer(
      docsOf(inputs, a, lossy, (n) => reading.update(n, total)),
      a.out,
      {
        vocabSize: o["vocab-size"],
        specials,
        minFrequency: o["min-frequency"],
        onMerges: (done, n) => {
          // merging starts once every document is read; the reading line goes once, not at every merge
          if (!merged) reading.end();
          merged = true;
          merging.update(done, n);
        },
      },
    );
    return {
      ...summary(t0, s.documents, s.bytes, s.tokens, undefined),
      vocab_size: s.vocab_size,
      merges: s.merges,
      out: a.out,
      ...(lossy ? { replaced_invalid_utf8: lossy.replaced } : {}),
    };
  } finally {
    reading.end();
    merging.end();
  }
}

/** Workers for encode: more than one per core only adds start-up time and memory (one tokenizer each). */
export function threadsFor(asked: number | undefined, total: number | undefined): number {
  const cores = navigator.hardwareConcurrency;
  if (asked === undefined) return total !== undefined && total > 4 << 20 ? cores : 0;
  if (asked > cores) log.info(`note: --threads ${asked} is more than this machine's ${cores} cores; using ${cores}`);
  return Math.min(asked, cores);
}

/** The non-blank lines of JSONL inputs, parsed, with where each came from (encode --chat, decode). */
async function* jsonRows(
  inputs: string[],
  lossy: Lossy | undefined,
  onBytes?: (n: number) => void,
): AsyncGenerator<{ line: string; row: any; source: string; index: number }> {
  let before = 0;
  for (const path of inputs) {
    const source = path === "-" ? "<stdin>" : path;
    let index = 0,
      read = 0;
    const track = (n: number) => {
      read = n;
      onBytes?.(before + n);
    };
    for await (const line of lines(path, { lossy, onBytes: track })) {
      index++;
      if (line.trim()) yield { line, row: parseJsonLine(line, source, index), source, index };
    }
    before += read;
  }
}

/** A row's "messages", checked: a non-empty list of {role, content} with a role the template knows. */
export function checkMessages(m: unknown, where: string): Message[] {
  if (!Array.isArray(m) || m.length === 0)
    throw new InputError(`${where}: expected "messages": a non-empty list of {"role","content"}`);
  return m.map((x, k) => {
    if (!x || typeof x.content !== "string") throw new InputError(`${where}: messages[${k}] has no string "content"`);
    if (!ROLES.includes(x.role))
      throw new InputError(
        `${where}: messages[${k}] has role ${JSON.stringify(x.role)}; expected one of ${ROLES.join(", ")}`,
      );
    return { role: x.role, content: x.content };
  });
}

/**
 * Encode every document (or, with --chat, every conversation) of the inputs into `out`, one record a
 * line: {"ids":[...]} followed by a JSONL row's other fields; --chat adds "assistant_mask".
 */
export async function tokenizeEncode(
  tok: Tokenizer,
  tokenizerDir: string,
  inputs: string[],
  a: EncodeArgs,
  out: Sink,
): Promise<Summary> {
  const t0 = performance.now();
  const o = validate(
    v.object({
      threads: v.optional(whole(0, (n) => `${n} is negative; give 0 (encode on the main thread) or more`)),
    }),
    { threads: a.threads === "auto" ? undefined : num(a.threads) },
  );
  if (a.chat && a.format !== "auto" && a.format !== "jsonl")
    throw new InputError(`--format ${a.format}: --chat reads JSONL rows of {"messages": [...]}`);
  const total = totalBytes(inputs);
  const lossy = lossyOf(a.lossy);
  // with records landing on the terminal, a progress line on the same screen would be written over
  const pr = process.stdout.isTTY ? null : progress("encoding");
  const onBytes = (n: number) => pr?.update(n, total);
  let documents = 0,
    bytes = 0,
    tokens = 0;
  try {
    if (a.chat) {
      for await (const { line, row, source, index } of jsonRows(inputs, lossy, onBytes)) {
        const e = encodeChat(tok, checkMessages(row?.messages, `${source}:${index}`));
        documents++;
        bytes += Buffer.byteLength(line);
        tokens += e.ids.length;
        const { messages: _m, ...rest } = row;
        out.write(`${JSON.stringify({ ids: e.ids, assistant_mask: e.assistantMask, ...rest })}\n`);
      }
    } else {
      const eos = a["add-eos"] ? tokenRoles(tok).docEnd : -1;
      const emit = (ids: ArrayLike<number>, row: Record<string, unknown> | undefined) => {
        tokens += ids.length;
        // joined by hand: JSON.stringify of a typed array would write an object, and of a plain one is slower
        const idsJson = `[${Array.prototype.join.call(ids, ",")}]`;
        if (!row) return out.write(`{"ids":${idsJson}}\n`);
        const { [a.field]: _text, ...rest } = row;
        const more = JSON.stringify(rest);
        out.write(`{"ids":${idsJson}${more.length > 2 ? `,${more.slice(1)}` : "}"}\n`);
      };
      const docs = docsOf(inputs, a, lossy, onBytes);
      const threads = threadsFor(o.threads, total);
      if (threads > 0) {
        const pool = new EncodePool(tokenizerDir, threads);
        try {
          const count = (d: { text: string }) => {
            documents++;
            bytes += Buffer.byteLength(d.text);
          };
          for await (const [ids, row] of pool.encodeAll(docs, count, eos)) emit(ids, row);
        } finally {
          pool.close();
        }
      } else {
        for await (const d of docs) {
          documents++;
          bytes += Buffer.byteLength(d.text);
          const ids = tok.encode(d.text);
          if (eos >= 0) ids.push(eos);
          emit(ids, d.row);
        }
      }
    }
  } finally {
    pr?.end();
  }
  return summary(t0, documents, bytes, tokens, lossy);
}

/** Decode every {"ids":[...]} line of the inputs into `out` as {"text":"..."}. */
export async function tokenizeDecode(tok: Tokenizer, inputs: string[], a: DecodeArgs, out: Sink): Promise<Summary> {
  const t0 = performance.now();
  const lossy = lossyOf(a.lossy);
  let documents = 0,
    bytes = 0,
    tokens = 0;
  for await (const { row, source, index } of jsonRows(inputs, lossy)) {
    const ids = row?.ids;
    if (!Array.isArray(ids) || !ids.every((x: unknown) => Number.isInteger(x) && (x as number) >= 0))
      throw new InputError(`${source}:${index}: expected {"ids": [non-negative integers]}`);
    const bad = ids.find((x: number) => x >= tok.size);
    if (bad !== undefined)
      throw new InputError(`${source}:${index}: token id ${bad} is outside the vocabulary (size ${tok.size})`);
    const text = tok.decode(ids, a["skip-special"]);
    documents++;
    tokens += ids.length;
    bytes += Buffer.byteLength(text);
    out.write(`${JSON.stringify({ text })}\n`);
  }
  return summary(t0, documents, bytes, tokens, lossy);
}
