// What the four packers share: the counters that end in the summary line, how a row's text or
// messages become ids, and the checks on fields with file:line errors.
import type { RowRecord } from "../io/readers.ts";
import { InputError } from "../base/errors.ts";
import type { RowStore } from "./row_store.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import { encodeChat, ROLES, type Message } from "../tokenizer/chat_template.ts";

export type Overlong = "truncate" | "drop";

export interface PackStats {
  inputs: number; // input rows or documents read
  rows: number; // rows written
  tokens: number; // real (non-pad) tokens in the rows
  padding: number; // pad positions
  dropped: number; // inputs left out (too long with --overlong drop, or unusable)
  truncated: number; // inputs cut to fit
  tail_tokens: number; // seq: tokens after the last full row
  no_assistant: number; // sft: conversations left out because no assistant turn gives them a target to train
  identical: number; // dpo: pairs left out because chosen and rejected are the same tokens (nothing to prefer)
}

/** What every packer works with: the tokenizer, where rows go, the row length L, the counters, and what to do with rows longer than L. */
export interface PackJob {
  tok: Tokenizer;
  store: RowStore;
  L: number;
  stats: PackStats;
  overlong: Overlong;
}

export function newStats(): PackStats {
  return {
    inputs: 0,
    rows: 0,
    tokens: 0,
    padding: 0,
    dropped: 0,
    truncated: 0,
    tail_tokens: 0,
    no_assistant: 0,
    identical: 0,
  };
}

export function where(r: RowRecord): string {
  return `${r.source}:${r.index}`;
}

/** A pre-tokenized row from `tokenize encode`: {"ids": [...]}, checked against the vocabulary. */
export function idsOf(r: RowRecord, tok: Tokenizer): number[] | null {
  const ids = r.row.ids;
  if (ids === undefined) return null;
  if (!Array.isArray(ids) || !ids.every((x) => Number.isInteger(x) && x >= 0))
    throw new InputError(`${where(r)}: "ids" must be a list of non-negative integers`);
  const bad = ids.find((x: number) => x >= tok.size);
  if (bad !== undefined)
    throw new InputError(
      `${where(r)}: token id ${bad} is outside the tokenizer's vocabulary (size ${tok.size}); was it encoded with another tokenizer?`,
    );
  return ids;
}

export function stringField(r: RowRecord, field: string): string {
  const v = r.row[field];
  if (v === undefined)
    throw new InputError(`${where(r)}: no field "${field}" (fields: ${Object.keys(r.row).join(", ") || "none"})`);
  if (typeof v !== "string")
    throw new InputError(
      `${where(r)}: field "${field}" is ${v === null ? "null" : Array.isArray(v) ? "a list" : typeof v}, expected a string`,
    );
  return v;
}

export function messagesOf(v: unknown, r: RowRecord, field: string): Message[] {
  if (!Array.isArray(v) || v.length === 0)
    throw new InputError(`${where(r)}: "${field}" must be a non-empty list of {"role","content"}`);
  return v.map((m: any, k: number) => {
    if (!m || typeof m !== "object") throw new InputError(`${where(r)}: ${field}[${k}] is not an object`);
    if (!ROLES.includes(m.role))
      throw new InputError(
        `${where(r)}: ${field}[${k}] has role ${JSON.stringify(m.role)}; expected one of ${ROLES.join(", ")}`,
      );
    if (typeof m.content !== "string") throw new InputError(`${where(r)}: ${field}[${k}] has no string "content"`);
    return { role: m.role, content: m.content };
  });
}

/** A whole conversation's ids and its assistant mask (1 on replies and their end-of-turn token). */
export function conversation(tok: Tokenizer, r: RowRecord): { ids: number[]; mask: number[] } {
  const pre = idsOf(r, tok);
  if (pre) {
    const m = r.row.assistant_mask;
    if (!Array.isArray(m) || m.length !== pre.length)
      throw new InputError(
        `${where(r)}: pre-tokenized conversation needs "assistant_mask" as long as "ids" (from \`tokenize encode --chat\`)`,
      );
    return { ids: pre, mask: m as number[] };
  }
  const e = encodeChat(tok, messagesOf(r.row.messages, r, "messages"));
  return { ids: e.ids, mask: e.assistantMask };
}

export function padTo(a: ArrayLike<number>, n: number, pad: number, left = false): Int32Array {
  const out = new Int32Array(n).fill(pad);
  const m = Math.min(a.length, n);
  if (left) for (let i = 0; i < m; i++) out[n - m + i] = a[a.length - m + i]!;
  else for (let i = 0; i < m; i++) out[i] = a[i]!;
  return out;
}
