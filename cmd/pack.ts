// bun cmd/pack.ts TYPE --tokenizer DIR --seq-len L --out DIR [--field text] [--seed S] [--val-fraction F]
//                [--doc-mask] [--overlong truncate|drop] [--response-len R] [--shard-rows N] INPUT...
// TYPE: seq | sft | dpo | grpo. INPUT: raw text (.txt, --lines), JSONL or parquet rows (tokenized on the
// fly with the tokenizer), or `tokenize encode`'s {"ids":[...]} JSONL; - for stdin. Writes
// OUT/{train,val}-NNNNN.safetensors and OUT/manifest.json, shuffled with the seed; prints
// {"event":"summary",...} on stdout. OUT must be new or empty, or an earlier pack output with --overwrite
// (lib/data/pack_out.ts).
import { defineCommand } from "citty";
import { packInputs } from "../lib/data/pack.ts";
import { bool, givenFlags, runCli, str } from "./_cli.ts";

const args = {
  type: { type: "positional", valueHint: "TYPE", description: "seq | sft | dpo | grpo" },
  input: { type: "positional", valueHint: "INPUT...", description: ".txt, .jsonl or .parquet files; - for stdin" },
  tokenizer: str("DIR", "directory with tokenizer.json (from `tokenize train`, or a Hugging Face model's)", {
    required: true,
  }),
  "seq-len": str("L", "tokens per row; grpo: prompt length", { required: true }),
  out: str("DIR", "output directory: new or empty, or an earlier pack output with --overwrite", { required: true }),
  overwrite: bool("replace an earlier pack output in --out (once the new one is complete)"),
  field: str("NAME", "seq: JSONL field / parquet column holding the text", { default: "text" }),
  seed: str("S", "shuffle seed", { default: "0" }),
  "val-fraction": str("F", "fraction of rows for the validation split, in [0, 1)", { default: "0" }),
  "doc-mask": bool("seq: write position_ids that restart at document starts"),
  overlong: {
    type: "enum",
    options: ["truncate", "drop"],
    default: "truncate",
    valueHint: "truncate|drop",
    description: "sft/dpo/grpo: what to do with rows longer than L",
  },
  "response-len": str("R", "grpo offline: tokens per response; auto: the --seq-len", { default: "auto" }),
  "shard-rows": str("N", "rows per shard; auto: shards of about 64 MiB", { default: "auto" }),
  lines: bool("a .txt input (or text on stdin) holds one document per line"),
  format: {
    type: "enum",
    options: ["auto", "txt", "jsonl", "parquet"],
    default: "auto",
    valueHint: "auto|txt|jsonl|parquet",
    description: 'how to read the inputs; auto: by extension, and stdin as JSONL when it starts with "{"',
  },
  lossy: bool("replace invalid UTF-8 with U+FFFD (counted in the summary) instead of refusing it"),
} as const;

export const command = defineCommand({
  meta: { name: "pack", description: "Turn text, conversations or preference pairs into training shards" },
  args,
  async run({ args: a, rawArgs }) {
    const given = givenFlags(args, rawArgs).keys();
    console.log(JSON.stringify(await packInputs(a._.slice(1), a, given)));
  },
});

if (import.meta.main) await runCli(command);
