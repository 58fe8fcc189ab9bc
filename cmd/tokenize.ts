// bun cmd/tokenize.ts train --vocab-size N --out DIR [--field text] [--lines] [--special TOKEN ...] INPUT...
// bun cmd/tokenize.ts encode --tokenizer DIR [--field text] [--lines] [--add-eos] [--chat] INPUT...
// bun cmd/tokenize.ts decode --tokenizer DIR [--skip-special] < ids.jsonl
// INPUT: .txt (a document per file, or per line with --lines), .jsonl (--field), .parquet (--field), or -
// for stdin. train prints events on stdout ending with {"event":"summary",...}; encode and decode print
// one record per line on stdout and their summary on stderr.
import { defineCommand } from "citty";
import { readDocs, lines, parseJsonLine, type Format } from "../lib/data/readers.ts";
import { InputError } from "../lib/io/errors.ts";
import { trainTokenizer } from "../lib/tokenizer/train.ts";
import { Tokenizer } from "../lib/tokenizer/tokenizer.ts";
import { encodeChat, ROLES, type Message } from "../lib/tokenizer/chat_template.ts";
import { EncodePool } from "../lib/tokenizer/encode_pool.ts";
import { progress } from "../lib/io/progress.ts";
import { runCli } from "../lib/io/cli.ts";
import { statSync } from "node:fs";

const inputArgs = {
  field: { type: "string", default: "text", description: "JSONL field / parquet column holding the text" },
  lines: { type: "boolean", default: false, description: "a .txt input holds one document per line" },
  format: { type: "string", description: "read inputs as txt, jsonl or parquet (default: by extension; stdin: txt)" },
} as const;

function inputsOf(args: { _: string[] }): string[] {
  const ins = args._; // citty has already taken the subcommand's name off
  if (ins.length === 0) throw new InputError("no INPUT given (files, or - for stdin)");
  return ins;
}

function formatArg(f: string | undefined): Format | undefined {
  if (f === undefined) return undefined;
  if (f !== "txt" && f !== "jsonl" && f !== "parquet") throw new InputError(`--format ${f}: expected txt, jsonl or parquet`);
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
  return { event: "summary", documents, bytes, tokens, seconds: +seconds.toFixed(3), bytes_per_token: +(bytes / Math.max(tokens, 1)).toFixed(3) };
}

const train = defineCommand({
  meta: { name: "train", description: "Train a byte-level BPE tokenizer; writes DIR/tokenizer.json and DIR/tokenizer_config.json" },
  args: {
    "vocab-size": { type: "string", required: true, description: "total vocabulary size (256 bytes + merges + special tokens)" },
    out: { type: "string", required: true, description: "output directory" },
    special: { type: "string", description: "extra special token (repeat the flag, or separate with commas)" },
    "min-frequency": { type: "string", default: "2", description: "stop merging when the best pair occurs fewer times" },
    ...inputArgs,
  },
  async run({ args }) {
    const t0 = performance.now();
    const inputs = inputsOf(args as any);
    const vocabSize = Number(args["vocab-size"]);
    const raw = (args as any).special;
    const specials = (Array.isArray(raw) ? raw : raw ? [raw] : []).flatMap((s: string) => s.split(",")).filter(Boolean);
    const total = totalBytes(inputs);
    const pr = progress("reading");
    const docs = readDocs(inputs, { field: args.field, lines: args.lines, format: formatArg(args.format), onBytes: (n) => pr.update(n, total) });
    const pm = progress("merges", "");
    const s = await trainTokenizer(docs, args.out, {
      vocabSize, specials, minFrequency: Number(args["min-frequency"]),
      onMerges: (d, n) => {
        pr.end();
        pm.update(d, n);
      },
    });
    pr.end();
    pm.end();
    console.log(JSON.stringify({ ...summaryLine(t0, s.documents, s.bytes, s.tokens), vocab_size: s.vocab_size, merges: s.merges, out: args.out }));
  },
});

const encode = defineCommand({
  meta: { name: "encode", description: 'Print {"ids":[...]} per document (plus the row\'s other fields for JSONL)' },
  args: {
    tokenizer: { type: "string", required: true, description: "directory with tokenizer.json" },
    "add-eos": { type: "boolean", default: false, description: "append the end-of-text token to every document" },
    chat: { type: "boolean", default: false, description: 'rows are {"messages":[...]}: render the chat template, print ids and assistant_mask' },
    threads: { type: "string", description: "encoding workers (default: all cores for inputs over 4 MB, else 0)" },
    ...inputArgs,
  },
  async run({ args }) {
    const t0 = performance.now();
    const tok = Tokenizer.fromDir(args.tokenizer);
    const inputs = inputsOf(args as any);
    const total = totalBytes(inputs);
    const out = Bun.stdout.writer();
    const pr = progress("encoding");
    let documents = 0, bytes = 0, tokens = 0;
    if (args.chat) {
      for (const path of inputs) {
        const source = path === "-" ? "<stdin>" : path;
        let index = 0;
        for await (const line of lines(path)) {
          index++;
          if (!line.trim()) continue;
          const row = parseJsonLine(line, source, index) as any;
          const msgs = checkMessages(row?.messages, source, index);
          const e = encodeChat(tok, msgs);
          documents++;
          bytes += Buffer.byteLength(line);
          tokens += e.ids.length;
          const { messages: _m, ...rest } = row;
          out.write(JSON.stringify({ ids: e.ids, assistant_mask: e.assistantMask, ...rest }) + "\n");
        }
      }
    } else {
      const eos = args["add-eos"] ? tok.specialId("<|endoftext|>") : -1;
      const threads = args.threads !== undefined ? Number(args.threads) : total !== undefined && total > 4 << 20 ? navigator.hardwareConcurrency : 0;
      const docs = readDocs(inputs, { field: args.field, lines: args.lines, format: formatArg(args.format), onBytes: (n) => pr.update(n, total) });
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
          for await (const [ids, row] of pool.encodeAll(docs, (d) => {
            documents++;
            bytes += Buffer.byteLength(d.text);
          }, eos)) emit(ids, row);
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
    console.error(JSON.stringify(summaryLine(t0, documents, bytes, tokens)));
  },
});

function checkMessages(m: unknown, path: string, index: number): Message[] {
  if (!Array.isArray(m) || m.length === 0) throw new InputError(`${path}:${index}: expected "messages": a non-empty list of {"role","content"}`);
  return m.map((x, k) => {
    if (!x || typeof x.content !== "string") throw new InputError(`${path}:${index}: messages[${k}] has no string "content"`);
    if (!ROLES.includes(x.role)) throw new InputError(`${path}:${index}: messages[${k}] has role ${JSON.stringify(x.role)}; expected one of ${ROLES.join(", ")}`);
    return { role: x.role, content: x.content };
  });
}

const decode = defineCommand({
  meta: { name: "decode", description: 'Read {"ids":[...]} lines on stdin, print {"text":"..."}' },
  args: {
    tokenizer: { type: "string", required: true, description: "directory with tokenizer.json" },
    "skip-special": { type: "boolean", default: false, description: "leave special tokens out of the text" },
  },
  async run({ args }) {
    const t0 = performance.now();
    const tok = Tokenizer.fromDir(args.tokenizer);
    const out = Bun.stdout.writer();
    let documents = 0, bytes = 0, tokens = 0, index = 0;
    for await (const line of lines("-")) {
      index++;
      if (!line.trim()) continue;
      const row = parseJsonLine(line, "<stdin>", index) as any;
      const ids = row?.ids;
      if (!Array.isArray(ids) || !ids.every((x: unknown) => Number.isInteger(x) && (x as number) >= 0))
        throw new InputError(`<stdin>:${index}: expected {"ids": [non-negative integers]}`);
      const bad = ids.find((x: number) => x >= tok.size);
      if (bad !== undefined) throw new InputError(`<stdin>:${index}: token id ${bad} is outside the vocabulary (size ${tok.size})`);
      const text = tok.decode(ids, args["skip-special"]);
      documents++;
      tokens += ids.length;
      bytes += Buffer.byteLength(text);
      out.write(JSON.stringify({ text }) + "\n");
    }
    await out.flush();
    console.error(JSON.stringify(summaryLine(t0, documents, bytes, tokens)));
  },
});

export const tokenize = defineCommand({
  meta: { name: "tokenize", description: "Train a byte-level BPE tokenizer, encode text to ids, decode ids to text" },
  subCommands: { train, encode, decode },
});

if (import.meta.main) await runCli(tokenize);
