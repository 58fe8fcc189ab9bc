// bun cmd/pack.ts TYPE --tokenizer DIR --seq-len L --out DIR [--field text] [--seed S] [--val-fraction F]
//                [--doc-mask] [--overlong truncate|drop] [--response-len R] [--shard-rows N] INPUT...
// TYPE: seq | sft | dpo | grpo. INPUT: raw text (.txt, --lines), JSONL or parquet rows (tokenized on the
// fly with the tokenizer), or `tokenize encode`'s {"ids":[...]} JSONL. Writes OUT/{train,val}-NNNNN.safetensors
// and OUT/manifest.json, shuffled with the seed; prints {"event":"summary",...} on stdout. OUT must be new or
// empty, or an earlier pack output with --overwrite (lib/data/pack_out.ts).
import { defineCommand } from "citty";
import * as v from "valibot";
import { readRows, type Format, type RowRecord } from "../lib/io/readers.ts";
import { RowStore, type KeySpec } from "../lib/data/row_store.ts";
import { newStats, type Overlong } from "../lib/data/pack_common.ts";
import { packSeq, seqKeys } from "../lib/data/pack_seq.ts";
import { packSft, sftKeys } from "../lib/data/pack_sft.ts";
import { packDpo, dpoKeys } from "../lib/data/pack_dpo.ts";
import { packGrpo, grpoKeys, offlineGroup } from "../lib/data/pack_grpo.ts";
import { Tokenizer } from "../lib/tokenizer/tokenizer.ts";
import { validate, num } from "../lib/io/validate.ts";
import { progress } from "../lib/io/progress.ts";
import { runCli } from "./_cli.ts";
import { packOutDir, packOutPolicy, preparePackOut } from "../lib/data/pack_out.ts";
import { InputError } from "../lib/base/errors.ts";

const Options = v.object({
  type: v.picklist(["seq", "sft", "dpo", "grpo"], "TYPE must be seq, sft, dpo or grpo"),
  tokenizer: v.string(),
  // 2^20 tokens per row is beyond any model's context; more is a typo that would exhaust memory
  "seq-len": v.pipe(
    v.number("expected a number"),
    v.integer("expected a whole number"),
    v.minValue(2, "must be at least 2 (one input and one target)"),
    v.maxValue(1 << 20, "must be at most 1048576"),
  ),
  out: v.pipe(v.string(), v.minLength(1)),
  field: v.string(),
  seed: v.pipe(
    v.number("expected a number"),
    v.integer("expected a whole number"),
    v.minValue(0),
    v.maxValue(2 ** 32 - 1, "must be below 2^32"),
  ),
  "val-fraction": v.pipe(
    v.number("expected a number"),
    v.minValue(0, "must be in [0, 1)"),
    v.maxValue(0.999, "must be in [0, 1)"),
  ),
  overlong: v.picklist(["truncate", "drop"], "expected truncate or drop"),
  "response-len": v.optional(v.pipe(v.number("expected a number"), v.integer(), v.minValue(1))),
  "shard-rows": v.optional(v.pipe(v.number("expected a number"), v.integer(), v.minValue(1))),
  "doc-mask": v.boolean(),
});

async function peek<T>(it: AsyncGenerator<T>): Promise<[T | undefined, AsyncGenerator<T>]> {
  const first = await it.next();
  async function* rest() {
    if (!first.done) yield first.value;
    yield* it;
  }
  return [first.done ? undefined : first.value, rest()];
}

export const pack = defineCommand({
  meta: { name: "pack", description: "Turn text, conversations or preference pairs into training shards" },
  args: {
    type: { type: "positional", required: true, description: "seq | sft | dpo | grpo" },
    tokenizer: { type: "string", required: true, description: "directory with tokenizer.json (from `tokenize train`)" },
    "seq-len": { type: "string", required: true, description: "tokens per row (L); grpo: prompt length" },
    out: {
      type: "string",
      required: true,
      description: "output directory: new or empty, or an earlier pack output with --overwrite",
    },
    overwrite: {
      type: "boolean",
      default: false,
      description: "replace an earlier pack output in --out (once the new one is complete)",
    },
    field: { type: "string", default: "text", description: "text field / column for seq" },
    seed: { type: "string", default: "0", description: "shuffle seed" },
    "val-fraction": { type: "string", default: "0", description: "fraction of rows for the validation split" },
    "doc-mask": {
      type: "boolean",
      default: false,
      description: "seq: write position_ids that restart at document starts",
    },
    overlong: { type: "string", default: "truncate", description: "sft/dpo/grpo: truncate or drop rows longer than L" },
    "response-len": { type: "string", description: "grpo offline: tokens per response (default: L)" },
    "shard-rows": { type: "string", description: "rows per shard (default: ~64 MiB shards)" },
    lines: { type: "boolean", default: false, description: "a .txt input holds one document per line" },
    format: {
      type: "string",
      description:
        'read inputs as txt, jsonl or parquet (default: by extension; stdin: jsonl when it starts with "{", else txt)',
    },
    lossy: {
      type: "boolean",
      default: false,
      description: "replace invalid UTF-8 with U+FFFD (counted in the summary) instead of refusing it",
    },
  },
  async run({ args, rawArgs }) {
    const t0 = performance.now();
    // a flag of another type would be accepted and do nothing
    for (const [flag, types] of [
      ["--response-len", ["grpo"]],
      ["--doc-mask", ["seq"]],
      ["--overlong", ["sft", "dpo", "grpo"]],
    ] as const)
      if (
        rawArgs.some((a) => a === flag || a.startsWith(`${flag}=`)) &&
        !(types as readonly string[]).includes(args.type)
      )
        throw new InputError(`${flag} applies to pack ${types.join(", ")}, not ${args.type}`);
    const o = validate(Options, {
      type: args.type,
      tokenizer: args.tokenizer,
      "seq-len": num(args["seq-len"]),
      out: args.out,
      field: args.field,
      seed: num(args.seed),
      "val-fraction": num(args["val-fraction"]),
      overlong: args.overlong,
      "response-len": num(args["response-len"]),
      "shard-rows": num(args["shard-rows"]),
      "doc-mask": args["doc-mask"],
    });
    const inputs = ((args as any)._ as string[]).slice(1);
    if (inputs.length === 0) throw new InputError("no INPUT given (files, or - for stdin)");
    const policy = packOutPolicy(args.overwrite);
    const out = packOutDir(o.out);
    preparePackOut(out, policy, (line) => console.error(line));
    const tok = Tokenizer.fromDir(o.tokenizer);
    const L = o["seq-len"];
    const format = args.format as Format | undefined;
    if (format !== undefined && !["txt", "jsonl", "parquet"].includes(format))
      throw new InputError(`--format ${format}: expected txt, jsonl or parquet`);
    const pr = progress(`pack ${o.type}`);
    const lossy = args.lossy ? { replaced: 0 } : undefined;
    let rows: AsyncGenerator<RowRecord> = readRows(inputs, {
      field: o.field,
      lines: args.lines,
      format,
      lossy,
      onBytes: (n) => pr.update(n),
    });
    let keys: KeySpec[];
    let group = 0;
    const R = o["response-len"] ?? L;
    if (o.type === "grpo") {
      const [first, rest] = await peek(rows);
      rows = rest;
      group = first ? offlineGroup(first) : 0;
      keys = grpoKeys(L, group, R);
    } else keys = o.type === "seq" ? seqKeys(L, o["doc-mask"]) : o.type === "sft" ? sftKeys(L) : dpoKeys(L);
    const stats = newStats();
    const store = new RowStore(keys, out, o.type === "grpo", policy);
    let result: ReturnType<RowStore["finish"]>;
    try {
      const ov = o.overlong as Overlong;
      const job = { tok, store, L, stats, overlong: ov };
      if (o.type === "seq") await packSeq(rows, job, o.field, o["doc-mask"]);
      else if (o.type === "sft") await packSft(rows, job);
      else if (o.type === "dpo") await packDpo(rows, job);
      else await packGrpo(rows, job, R, group);
      if (stats.rows === 0 && stats.identical)
        throw new InputError(
          `no rows to write: chosen and rejected are the same tokens in every pair (${stats.identical}, after truncation to ${L}); there is nothing to prefer`,
        );
      if (stats.rows === 0)
        throw new InputError(
          `no rows to write: ${stats.inputs} inputs gave no complete row of ${L + (o.type === "seq" ? 1 : 0)} tokens`,
        );
      result = store.finish({
        seed: o.seed,
        valFraction: o["val-fraction"],
        shardRows: o["shard-rows"],
        manifest: {
          format: "bunlm-shards",
          version: 1,
          type: o.type,
          seq_len: L,
          ...(o.type === "grpo" ? { group_size: group, response_len: group ? R : null } : {}),
          doc_mask: o.type === "seq" ? o["doc-mask"] : o.type === "sft",
          tokenizer: {
            path: o.tokenizer,
            hash: tok.hash,
            vocab_size: tok.size,
            eos_id: tok.specialId("<|endoftext|>"),
            pad_id: tok.specialId("<|pad|>"),
          },
          sources: inputs,
          stats,
        },
      });
    } catch (e) {
      store.abort();
      throw e;
    } finally {
      pr.end();
    }
    const slots = stats.tokens + stats.padding;
    console.log(
      JSON.stringify({
        event: "summary",
        type: o.type,
        rows: { train: result.train.rows, val: result.val.rows },
        shards: result.train.shards.length + result.val.shards.length,
        inputs: stats.inputs,
        tokens: stats.tokens,
        padding_fraction: +(slots ? stats.padding / slots : 0).toFixed(4),
        dropped_rows: stats.dropped,
        truncated_rows: stats.truncated,
        ...(o.type === "seq" ? { tail_tokens: stats.tail_tokens } : {}),
        ...(o.type === "sft" ? { no_assistant: stats.no_assistant } : {}),
        ...(o.type === "dpo" ? { identical_pairs: stats.identical } : {}),
        seconds: +((performance.now() - t0) / 1000).toFixed(3),
        out: o.out,
        ...(lossy ? { replaced_invalid_utf8: lossy.replaced } : {}),
      }),
    );
  },
});

if (import.meta.main) await runCli(pack);
