// What `pack` runs: its flags checked, the inputs read as rows (text, JSONL, parquet, or "-" for stdin:
// JSONL when its first non-blank byte is "{"), tokenized by the packer of the type (seq, sft, dpo,
// grpo), and the rows stored, shuffled with the seed and split into shards with a manifest, under
// pack's output policy (pack_out.ts). Returns the summary line; the command prints it.
import * as v from "valibot";
import { InputError } from "../base/errors.ts";
import { progress } from "../io/progress.ts";
import { type Format, type RowRecord, readRows } from "../io/readers.ts";
import { num, validate } from "../io/validate.ts";
import { Tokenizer } from "../tokenizer/tokenizer.ts";
import { newStats, type PackStats } from "./pack_common.ts";
import { dpoKeys, packDpo } from "./pack_dpo.ts";
import { grpoKeys, offlineGroup, packGrpo } from "./pack_grpo.ts";
import { packOutDir, packOutPolicy, preparePackOut } from "./pack_out.ts";
import { packSeq, seqKeys } from "./pack_seq.ts";
import { packSft, sftKeys } from "./pack_sft.ts";
import { type KeySpec, RowStore } from "./row_store.ts";
import { tokenRoles } from "../tokenizer/roles.ts";

export const PACK_TYPES = ["seq", "sft", "dpo", "grpo"] as const;
export type PackType = (typeof PACK_TYPES)[number];

/** pack's flags as the command line gives them: numbers still text, "auto" where a size is derived. */
export interface PackArgs {
  type: string;
  tokenizer: string;
  "seq-len": string;
  out: string;
  overwrite: boolean;
  field: string;
  seed: string;
  "val-fraction": string;
  "doc-mask": boolean;
  overlong: string;
  /** a whole number, or "auto": the --seq-len */
  "response-len": string;
  /** a whole number, or "auto": shards of about 64 MiB */
  "shard-rows": string;
  lines: boolean;
  format: "auto" | Format;
  lossy: boolean;
}

export interface PackSummary {
  event: "summary";
  type: PackType;
  rows: { train: number; val: number };
  shards: number;
  inputs: number;
  tokens: number;
  padding_fraction: number;
  dropped_rows: number;
  truncated_rows: number;
  tail_tokens?: number;
  no_assistant?: number;
  identical_pairs?: number;
  seconds: number;
  out: string;
  replaced_invalid_utf8?: number;
}

// flags that only one kind of pack reads: elsewhere they would be accepted and do nothing
const ONLY_FOR: [string, readonly PackType[]][] = [
  ["response-len", ["grpo"]],
  ["doc-mask", ["seq"]],
  ["overlong", ["sft", "dpo", "grpo"]],
];

const wholeNumber = v.pipe(v.number("expected a number"), v.integer("expected a whole number"));
const Options = v.object({
  type: v.picklist(PACK_TYPES, "TYPE must be seq, sft, dpo or grpo"),
  // 2^20 tokens per row is beyond any model's context; more is a typo that would exhaust memory
  "seq-len": v.pipe(
    wholeNumber,
    v.minValue(2, "must be at least 2 (one input and one target)"),
    v.maxValue(1 << 20, "must be at most 1048576"),
  ),
  out: v.pipe(v.string(), v.minLength(1)),
  seed: v.pipe(wholeNumber, v.minValue(0), v.maxValue(2 ** 32 - 1, "must be below 2^32")),
  "val-fraction": v.pipe(
    v.number("expected a number"),
    v.minValue(0, "must be in [0, 1)"),
    v.maxValue(0.999, "must be in [0, 1)"),
  ),
  overlong: v.picklist(["truncate", "drop"], "expected truncate or drop"),
  "response-len": v.optional(v.pipe(wholeNumber, v.minValue(1))),
  "shard-rows": v.optional(v.pipe(wholeNumber, v.minValue(1))),
});

/** The flags checked: numbers parsed, a flag of another type refused (`given`: the flags on the command line). */
export function packOptions(a: PackArgs, given: Iterable<string>) {
  const auto = (x: string) => (x === "auto" ? undefined : num(x));
  const o = validate(Options, {
    type: a.type,
    "seq-len": num(a["seq-len"]),
    out: a.out,
    seed: num(a.seed),
    "val-fraction": num(a["val-fraction"]),
    overlong: a.overlong,
    "response-len": auto(a["response-len"]),
    "shard-rows": auto(a["shard-rows"]),
  });
  const set = new Set(given);
  for (const [flag, types] of ONLY_FOR)
    if (set.has(flag) && !types.includes(o.type))
      throw new InputError(`--${flag} applies to pack ${types.join(", ")}, not ${o.type}`);
  return o;
}

async function peek<T>(it: AsyncGenerator<T>): Promise<[T | undefined, AsyncGenerator<T>]> {
  const first = await it.next();
  async function* rest() {
    if (!first.done) yield first.value;
    yield* it;
  }
  return [first.done ? undefined : first.value, rest()];
}

/** Pack the inputs into shards under --out; `given` names the flags the command line gave. */
export async function packInputs(inputs: string[], a: PackArgs, given: Iterable<string>): Promise<PackSummary> {
  const t0 = performance.now();
  const o = packOptions(a, given);
  if (inputs.length === 0) throw new InputError("no INPUT given (files, or - for stdin)");
  const policy = packOutPolicy(a.overwrite);
  const out = packOutDir(o.out);
  preparePackOut(out, policy);
  const tok = Tokenizer.fromDir(a.tokenizer);
  const L = o["seq-len"];
  const type = o.type;
  const pr = progress(`pack ${type}`);
  const lossy = a.lossy ? { replaced: 0 } : undefined;
  let rows: AsyncGenerator<RowRecord> = readRows(inputs, {
    field: a.field,
    lines: a.lines,
    format: a.format === "auto" ? undefined : a.format,
    lossy,
    onBytes: (n) => pr.update(n),
  });
  let keys: KeySpec[];
  let group = 0;
  const R = o["response-len"] ?? L;
  if (type === "grpo") {
    // whether the rows carry offline responses, and how many, decides the shards' keys
    const [first, rest] = await peek(rows);
    rows = rest;
    group = first ? offlineGroup(first) : 0;
    keys = grpoKeys(L, group, R);
  } else keys = type === "seq" ? seqKeys(L, a["doc-mask"]) : type === "sft" ? sftKeys(L) : dpoKeys(L);
  const stats = newStats();
  const store = new RowStore(keys, out, type === "grpo", policy);
  let result: ReturnType<RowStore["finish"]>;
  try {
    const job = { tok, store, L, stats, overlong: o.overlong };
    if (type === "seq") await packSeq(rows, job, a.field, a["doc-mask"]);
    else if (type === "sft") await packSft(rows, job);
    else if (type === "dpo") await packDpo(rows, job);
    else await packGrpo(rows, job, R, group);
    refuseEmpty(stats, type, L);
    result = store.finish({
      seed: o.seed,
      valFraction: o["val-fraction"],
      shardRows: o["shard-rows"],
      manifest: {
        format: "bunlm-shards",
        version: 1,
        type,
        seq_len: L,
        ...(type === "grpo" ? { group_size: group, response_len: group ? R : null } : {}),
        doc_mask: type === "seq" ? a["doc-mask"] : type === "sft",
        tokenizer: {
          path: a.tokenizer,
          hash: tok.hash,
          vocab_size: tok.size,
          eos_id: tokenRoles(tok).docEnd,
          pad_id: tokenRoles(tok).pad,
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
  return {
    event: "summary",
    type,
    rows: { train: result.train.rows, val: result.val.rows },
    shards: result.train.shards.length + result.val.shards.length,
    inputs: stats.inputs,
    tokens: stats.tokens,
    padding_fraction: +(slots ? stats.padding / slots : 0).toFixed(4),
    dropped_rows: stats.dropped,
    truncated_rows: stats.truncated,
    ...(type === "seq" ? { tail_tokens: stats.tail_tokens } : {}),
    ...(type === "sft" ? { no_assistant: stats.no_assistant } : {}),
    ...(type === "dpo" ? { identical_pairs: stats.identical } : {}),
    seconds: +((performance.now() - t0) / 1000).toFixed(3),
    out: o.out,
    ...(lossy ? { replaced_invalid_utf8: lossy.replaced } : {}),
  };
}

/** A dataset of no rows would only fail later, in training: say now why there are none. */
function refuseEmpty(stats: PackStats, type: PackType, L: number): void {
  if (stats.rows > 0) return;
  if (stats.identical)
    throw new InputError(
      `no rows to write: chosen and rejected are the same tokens in every pair (${stats.identical}, after truncation to ${L}); there is nothing to prefer`,
    );
  throw new InputError(
    `no rows to write: ${stats.inputs} inputs gave no complete row of ${L + (type === "seq" ? 1 : 0)} tokens`,
  );
}
