// bun cmd/tokenize.ts train --vocab-size N --out DIR [--min-frequency 2] [--field text] [--lines] [--special TOKEN ...] [--lossy] INPUT...
// bun cmd/tokenize.ts encode --tokenizer DIR [--field text] [--lines] [--add-eos] [--chat] [--threads N] [--lossy] INPUT...
// bun cmd/tokenize.ts decode --tokenizer DIR [--skip-special] [--lossy] [IDS.jsonl ...]   (none, or -: stdin)
// INPUT: .txt (a document per file, or per line with --lines), .jsonl (--field), .parquet (--field), or -
// for stdin. Text must be UTF-8; --lossy replaces invalid bytes with U+FFFD and counts them in the
// summary. train prints events on stdout ending with {"event":"summary",...}; encode and decode print
// one record per line on stdout and their summary on stderr.
import { defineCommand } from "citty";
import * as v from "valibot";
import { readDocs, lines, parseJsonLine, type Format, type Lossy } from "../lib/io/readers.ts";
import { InputError } from "../lib/base/errors.ts";
import { validate, num } from "../lib/io/validate.ts";
import { trainTokenizer, minVocab, TOKENIZER_FILES } from "../lib/tokenizer/train.ts";
import { checkOutDir } from "../lib/io/out_dir.ts";
import { removeStaleTemps } from "../lib/io/stale.ts";
import { Tokenizer } from "../lib/tokenizer/tokenizer.ts";
import { encodeChat, ROLES, type Message } from "../lib/tokenizer/chat_template.ts";
import { EncodePool } from "../lib/tokenizer/encode_pool.ts";
import { progress } from "../lib/io/progress.ts";
import { allValues, runCli } from "./_cli.ts";
import { statSync } from "node:fs";

const inputArgs = {
  field: { type: "string", default: "text", description: "JSONL field / parquet column holding the text" },
  lines: { type: "boolean", default: false, description: "a .txt input holds one document per line" },
  format: {
    type: "string",
    description:
      "read inputs as txt, jsonl or parquet (default: by extension; stdin: jsonl when it starts with {, else txt)",
  },
  lossy: {
    type: "boolean",
    default: false,
    description: "replace invalid UTF-8 with U+FFFD (counted in the summary) instead of refusing it",
  },
} as const;

const lossyArg = { lossy: inputArgs.lossy };

const badWhole = (i: { received: string }) => `expected a whole number, got ${i.received}`;
const whole = (min: number, tooSmall: (n: number) => string) =>
  v.pipe(
    v.number(badWhole),
    v.integer(badWhole),
    v.minValue(min, (i) => tooSmall(i.input as number)),
  );

/** --lossy's counter, or undefined (strict); the summary reports it only when asked for. */
function lossyOf(on: boolean): Lossy | undefined {
  return on ? { replaced: 0 } : undefined;
}

function lossyField(l: Lossy | undefined): { replaced_invalid_utf8?: number } {
  return l ? { replaced_invalid_utf8: l.replaced } : {};
}

/** The documents of train's and encode's inputs, as their shared flags (--field, --lines, --format) say. */
function docsOf(
  inputs: string[],
  args: { field: string; lines: boolean; format?: string },
  lossy: Lossy | undefined,
  onBytes: (n: number) => void,
) {
  return readDocs(inputs, { field: args.field, lines: args.lines, format: formatArg(args.format), lossy, onBytes });
}

/** The non-blank lines of JSONL inputs, parsed, with where each came from (encode --chat, decode). */
async function* jsonRows(
  inputs: string[],
  lossy: Lossy | undefined,
): AsyncGenerator<{ line: string; row: any; source: string; index: number }> {
  for (const path of inputs) {
    const source = path === "-" ? "<stdin>" : path;
    let index = 0;
    for await (const line of lines(path, { lossy })) {
      index++;
      if (line.trim()) yield { line, row: parseJsonLine(line, source, index), source, index };
    }
  }
}

function inputsOf(args: { _: string[] }): string[] {
  const ins = args._; // citty has already taken the subcommand's name off
  if (ins.length === 0) throw new InputError("no INPUT given (files, or - for stdin)");
  return ins;
}

function formatArg(f: string | undefined): Format | undefined {
  if (f === undefined) return undefined;
  if (f !== "txt" && f !== "jsonl" && f !== "parquet")
    throw new InputError(`--format ${f}: expected txt, jsonl or parquet`);
  return f;
}

function totalBytes(inputs: string[]): number | undefined {
  let n = 0;
  for (const p of inputs) {
    if (p === "-") return undefined;
    try {
      n += statSync(p).size;
    } catch {
      return undefined;
    }
  }
  return n;
}

function summaryLine(t0: number, documents: number, bytes: number, tokens: number) {
  const seconds = (performance.now() - t0) / 1000;
  return {
    event: "summary",
    documents,
    bytes,
    tokens,
    seconds: +seconds.toFixed(3),
    bytes_per_token: +(bytes / Math.max(tokens, 1)).toFixed(3),
  };
}

const train = defineCommand({
  meta: {
    name: "train",
    description: "Train a byte-level BPE tokenizer; writes DIR/tokenizer.json and DIR/tokenizer_config.json",
  },
  args: {
    "vocab-size": {
      type: "string",
      required: true,
      description: "total vocabulary size (256 bytes + merges + special tokens)",
    },
    out: {
      type: "string",
      required: true,
      description: "output directory: new or empty, or an earlier tokenizer with --overwrite",
    },
    overwrite: {
      type: "boolean",
      default: false,
      description: "replace the tokenizer files of an earlier `tokenize train` in --out",
    },
    special: { type: "string", description: "extra special token (repeat the flag, or separate with commas)" },
    "min-frequency": {
      type: "string",
      default: "2",
      description: "stop merging when the best pair occurs fewer times",
    },
    ...inputArgs,
  },
  async run({ args, rawArgs }) {
    const t0 = performance.now();
    const raw = allValues(rawArgs, "special");
    const specials = (Array.isArray(raw) ? raw : raw ? [raw] : []).flatMap((s: string) => s.split(",")).filter(Boolean);
    const floor = minVocab(specials);
    const o = validate(
      v.object({
        "vocab-size": whole(
          floor,
          (n) => `${n} is too small: the 256 byte tokens and ${floor - 256} special tokens need at least ${floor}`,
        ),
        "min-frequency": whole(1, (n) => `${n} is too small: a pair must occur at least once to be merged`),
      }),
      { "vocab-size": num(args["vocab-size"]), "min-frequency": num(args["min-frequency"]) },
    );
    const inputs = inputsOf(args as any);
    const gone = removeStaleTemps(
      args.out,
      TOKENIZER_FILES.map((f) => `.${f}.`),
    );
    if (gone.length)
      console.error(`bunlm: note: ${args.out}: removed ${gone.join(", ")}, left by a tokenize that was killed`);
    checkOutDir(args.out, {
      flag: "--out",
      command: "tokenize train",
      overwrite: args.overwrite,
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
    const lossy = lossyOf(args.lossy);
    const pr = progress("reading");
    const docs = docsOf(inputs, args, lossy, (n) => pr.update(n, total));
    const pm = progress("merges", "");
    const s = await trainTokenizer(docs, args.out, {
      vocabSize: o["vocab-size"],
      specials,
      minFrequency: o["min-frequency"],
      onMerges: (d, n) => {
        pr.end();
        pm.update(d, n);
      },
    });
    pr.end();
    pm.end();
    console.log(
      JSON.stringify({
        ...summaryLine(t0, s.documents, s.bytes, s.tokens),
        vocab_size: s.vocab_size,
        merges: s.merges,
        out: args.out,
        ...lossyField(lossy),
      }),
    );
  },
});

const encode = defineCommand({
  meta: { name: "encode", description: 'Print {"ids":[...]} per document (plus the row\'s other fields for JSONL)' },
  args: {
    tokenizer: { type: "string", required: true, description: "directory with tokenizer.json" },
    "add-eos": { type: "boolean", default: false, description: "append the end-of-text token to every document" },
    chat: {
      type: "boolean",
      default: false,
      description: 'rows are {"messages":[...]}: render the chat template, print ids and assistant_mask',
    },
    threads: {
      type: "string",
      description: "encoding workers, at most one per core (default: all cores for inputs over 4 MB, else 0)",
    },
    ...inputArgs,
  },
  async run({ args }) {
    const t0 = performance.now();
    const o = validate(
      v.object({
        threads: v.optional(whole(0, (n) => `${n} is negative; give 0 (encode on the main thread) or more`)),
      }),
      { threads: num(args.threads) },
    );
    const tok = Tokenizer.fromDir(args.tokenizer);
    const inputs = inputsOf(args as any);
    const total = totalBytes(inputs);
    const lossy = lossyOf(args.lossy);
    const out = Bun.stdout.writer();
    const pr = progress("encoding");
    let documents = 0,
      bytes = 0,
      tokens = 0;
    if (args.chat) {
      for await (const { line, row, source, index } of jsonRows(inputs, lossy)) {
        const msgs = checkMessages(row?.messages, source, index);
        const e = encodeChat(tok, msgs);
        documents++;
        bytes += Buffer.byteLength(line);
        tokens += e.ids.length;
        const { messages: _m, ...rest } = row;
        out.write(JSON.stringify({ ids: e.ids, assistant_mask: e.assistantMask, ...rest }) + "\n");
      }
    } else {
      const eos = args["add-eos"] ? tok.specialId("<|endoftext|>") : -1;
      const threads = threadsFor(o.threads, total);
      const docs = docsOf(inputs, args, lossy, (n) => pr.update(n, total));
      const pool = threads > 0 ? new EncodePool(args.tokenizer, threads) : null;
      const emit = (ids: ArrayLike<number>, row: Record<string, unknown> | undefined) => {
        tokens += ids.length;
        const idsJson = "[" + Array.prototype.join.call(ids, ",") + "]";
        if (row) {
          const { [args.field]: _t, ...rest } = row;
          const more = JSON.stringify(rest);
          out.write(`{"ids":${idsJson}${more.length > 2 ? "," + more.slice(1) : "}"}\n`);
        } else out.write(`{"ids":${idsJson}}\n`);
      };
      try {
        if (pool) {
          for await (const [ids, row] of pool.encodeAll(
            docs,
            (d) => {
              documents++;
              bytes += Buffer.byteLength(d.text);
            },
            eos,
          ))
            emit(ids, row);
        } else {
          for await (const d of docs) {
            documents++;
            bytes += Buffer.byteLength(d.text);
            const ids = tok.encode(d.text);
            if (eos >= 0) ids.push(eos);
            emit(ids, d.row);
          }
        }
      } finally {
        pool?.close();
      }
    }
    await out.flush();
    pr.end();
    console.error(JSON.stringify({ ...summaryLine(t0, documents, bytes, tokens), ...lossyField(lossy) }));
  },
});

/** Workers for encode: more than one per core only adds start-up time and memory (one tokenizer each). */
function threadsFor(asked: number | undefined, total: number | undefined): number {
  const cores = navigator.hardwareConcurrency;
  if (asked === undefined) return total !== undefined && total > 4 << 20 ? cores : 0;
  if (asked > cores)
    console.error(`bunlm: note: --threads ${asked} is more than this machine's ${cores} cores; using ${cores}`);
  return Math.min(asked, cores);
}

function checkMessages(m: unknown, path: string, index: number): Message[] {
  if (!Array.isArray(m) || m.length === 0)
    throw new InputError(`${path}:${index}: expected "messages": a non-empty list of {"role","content"}`);
  return m.map((x, k) => {
    if (!x || typeof x.content !== "string")
      throw new InputError(`${path}:${index}: messages[${k}] has no string "content"`);
    if (!ROLES.includes(x.role))
      throw new InputError(
        `${path}:${index}: messages[${k}] has role ${JSON.stringify(x.role)}; expected one of ${ROLES.join(", ")}`,
      );
    return { role: x.role, content: x.content };
  });
}

const decode = defineCommand({
  meta: {
    name: "decode",
    description: 'Read {"ids":[...]} lines from the files given (or stdin), print {"text":"..."}',
  },
  args: {
    tokenizer: { type: "string", required: true, description: "directory with tokenizer.json" },
    "skip-special": { type: "boolean", default: false, description: "leave special tokens out of the text" },
    ...lossyArg,
  },
  async run({ args }) {
    const t0 = performance.now();
    const tok = Tokenizer.fromDir(args.tokenizer);
    const inputs = (args as any)._.length ? ((args as any)._ as string[]) : ["-"];
    const lossy = lossyOf(args.lossy);
    const out = Bun.stdout.writer();
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
      const text = tok.decode(ids, args["skip-special"]);
      documents++;
      tokens += ids.length;
      bytes += Buffer.byteLength(text);
      out.write(JSON.stringify({ text }) + "\n");
    }
    await out.flush();
    console.error(JSON.stringify({ ...summaryLine(t0, documents, bytes, tokens), ...lossyField(lossy) }));
  },
});

export const tokenize = defineCommand({
  meta: { name: "tokenize", description: "Train a byte-level BPE tokenizer, encode text to ids, decode ids to text" },
  subCommands: { train, encode, decode },
});

if (import.meta.main) await runCli(tokenize);
