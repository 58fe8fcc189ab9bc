// bun cmd/tokenize.ts train --vocab-size N --out DIR [--min-frequency 2] [--field text] [--lines] [--special TOKEN ...] [--lossy] INPUT...
// bun cmd/tokenize.ts encode --tokenizer DIR [--field text] [--lines] [--add-eos] [--chat] [--threads N] [--lossy] INPUT...
// bun cmd/tokenize.ts decode --tokenizer DIR [--skip-special] [--lossy] [IDS.jsonl ...]   (none, or -: stdin)
// INPUT: .txt (a document per file, or per line with --lines), .jsonl (--field), .parquet (--field), or -
// for stdin (JSONL when its first non-blank byte is "{", else text). train prints its summary on stdout;
// encode and decode print one record per line on stdout and their summary on stderr.
import { defineCommand } from "citty";
import { clearStatus } from "../lib/base/log.ts";
import { inputsOf, tokenizeDecode, tokenizeEncode, tokenizeTrain } from "../lib/tokenizer/tokenize.ts";
import { Tokenizer } from "../lib/tokenizer/tokenizer.ts";
import { bool, givenFlags, runCli, str } from "./_cli.ts";

const lossy = bool("replace invalid UTF-8 with U+FFFD (counted in the summary) instead of refusing it");
const inputArgs = {
  input: { type: "positional", valueHint: "INPUT...", description: ".txt, .jsonl or .parquet files; - for stdin" },
  field: str("NAME", "JSONL field / parquet column holding the text", { default: "text" }),
  lines: bool("a .txt input (or text on stdin) holds one document per line"),
  format: {
    type: "enum",
    options: ["auto", "txt", "jsonl", "parquet"],
    default: "auto",
    valueHint: "auto|txt|jsonl|parquet",
    description: 'how to read the inputs; auto: by extension, and stdin as JSONL when it starts with "{"',
  },
  lossy,
} as const;
const tokenizer = str("DIR", "directory with tokenizer.json", { required: true });

/** A summary that shares stderr with the progress line: erase that first. */
function summaryToStderr(s: object): void {
  clearStatus();
  process.stderr.write(`${JSON.stringify(s)}\n`);
}

// repeatable: citty keeps only the last value, givenFlags every one
const special = str("TOKEN", "extra special token (repeat the flag, or separate with commas)");

const train = defineCommand({
  meta: {
    name: "train",
    description: "Train a byte-level BPE tokenizer; writes DIR/tokenizer.json and DIR/tokenizer_config.json",
  },
  args: {
    "vocab-size": str("N", "total vocabulary size (256 bytes + merges + special tokens)", { required: true }),
    out: str("DIR", "output directory: new or empty, or an earlier tokenizer with --overwrite", { required: true }),
    overwrite: bool("replace the tokenizer files of an earlier `tokenize train` in --out"),
    special,
    "min-frequency": str("N", "stop merging when the best pair occurs fewer times", { default: "2" }),
    ...inputArgs,
  },
  async run({ args, rawArgs }) {
    const s = await tokenizeTrain(inputsOf(args._), {
      ...args,
      special: givenFlags({ special }, rawArgs).get("special") ?? [],
    });
    console.log(JSON.stringify(s));
  },
});

const encode = defineCommand({
  meta: { name: "encode", description: 'Print {"ids":[...]} per document (plus the row\'s other fields for JSONL)' },
  args: {
    tokenizer,
    "add-eos": bool("append the end-of-text token to every document"),
    chat: bool('rows are {"messages":[...]}: render the chat template, print ids and assistant_mask'),
    threads: str("N", "encoding workers, at most one per core; auto: all cores for inputs over 4 MB, else 0", {
      default: "auto",
    }),
    ...inputArgs,
  },
  async run({ args }) {
    const tok = Tokenizer.fromDir(args.tokenizer);
    const out = Bun.stdout.writer();
    const s = await tokenizeEncode(tok, args.tokenizer, inputsOf(args._), args, out);
    await out.flush();
    summaryToStderr(s);
  },
});

const decode = defineCommand({
  meta: {
    name: "decode",
    description: 'Read {"ids":[...]} lines from the files given (or stdin), print {"text":"..."}',
  },
  args: {
    tokenizer,
    input: { type: "positional", required: false, valueHint: "IDS.jsonl...", description: "none or - for stdin" },
    "skip-special": bool("leave special tokens out of the text"),
    lossy,
  },
  async run({ args }) {
    const tok = Tokenizer.fromDir(args.tokenizer);
    const out = Bun.stdout.writer();
    const s = await tokenizeDecode(tok, inputsOf(args._, true), args, out);
    await out.flush();
    summaryToStderr(s);
  },
});

export const command = defineCommand({
  meta: { name: "tokenize", description: "Train a byte-level BPE tokenizer, encode text to ids, decode ids to text" },
  subCommands: { train, encode, decode },
});

if (import.meta.main) await runCli(command);
