// dpo: preference pairs {"prompt", "chosen", "rejected"} → chosen, rejected (L tokens each, right-
// padded with the real <|pad|> token) and chosen_mask, rejected_mask: 1 on the response's tokens,
// 0 on the prompt and padding. The trainer sums log p(token t | tokens before t) where the mask is 1.
// Two input forms, as TRL takes them:
//   strings          prompt + response, the response followed by <|endoftext|> (no chat template)
//   message lists    prompt is a conversation, chosen/rejected the assistant's turn(s); rendered
//                    with the chat template, the mask covers the reply and its <|im_end|>
// Too long: the response is cut to fit (--overlong truncate) or the pair dropped; a prompt that
// leaves no room for any response token is always dropped.
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import type { RowRecord } from "../io/readers.ts";
import type { KeySpec } from "./row_store.ts";
import { InputError } from "../base/errors.ts";
import { encodeChat } from "../tokenizer/chat_template.ts";
import { messagesOf, padTo, where, type PackJob } from "./pack_common.ts";
import { tokenRoles } from "../tokenizer/roles.ts";

export function dpoKeys(L: number): KeySpec[] {
  return [
    { name: "chosen", dtype: "I32", shape: [L] },
    { name: "rejected", dtype: "I32", shape: [L] },
    { name: "chosen_mask", dtype: "U8", shape: [L] },
    { name: "rejected_mask", dtype: "U8", shape: [L] },
  ];
}

function sequence(
  tok: Tokenizer,
  r: RowRecord,
  key: "chosen" | "rejected",
): { ids: number[]; mask: number[]; promptLen: number } {
  const p = r.row.prompt,
    x = r.row[key];
  if (p === undefined) throw new InputError(`${where(r)}: no field "prompt"`);
  if (x === undefined) throw new InputError(`${where(r)}: no field "${key}"`);
  if (typeof p === "string" && typeof x === "string") {
    const pi = tok.encode(p),
      xi = [...tok.encode(x), tokenRoles(tok).docEnd];
    return { ids: [...pi, ...xi], mask: [...pi.map(() => 0), ...xi.map(() => 1)], promptLen: pi.length };
  }
  const prompt = typeof p === "string" ? [{ role: "user" as const, content: p }] : messagesOf(p, r, "prompt");
  const reply = typeof x === "string" ? [{ role: "assistant" as const, content: x }] : messagesOf(x, r, key);
  const e = encodeChat(tok, [...prompt, ...reply]);
  const promptLen = e.message.findIndex((m) => m >= prompt.length);
  return {
    ids: e.ids,
    mask: e.assistantMask.map((v, i) => (e.message[i]! >= prompt.length ? v : 0)),
    promptLen: promptLen < 0 ? e.ids.length : promptLen,
  };
}

export async function packDpo(rows: AsyncIterable<RowRecord>, job: PackJob): Promise<void> {
  const { tok, store, L, overlong, stats } = job;
  const pad = tokenRoles(tok).pad;
  for await (const r of rows) {
    stats.inputs++;
    const c = sequence(tok, r, "chosen"),
      j = sequence(tok, r, "rejected");
    const long = c.ids.length > L || j.ids.length > L;
    if (long && (overlong === "drop" || c.promptLen >= L || j.promptLen >= L)) {
      stats.dropped++;
      continue;
    }
    const row = {
      chosen: padTo(c.ids, L, pad),
      rejected: padTo(j.ids, L, pad),
      chosen_mask: Uint8Array.from(padTo(c.mask, L, 0)),
      rejected_mask: Uint8Array.from(padTo(j.mask, L, 0)),
    };
    // the same response twice (as written, or once truncated) has no preference to learn: its loss
    // is log 2 with a zero gradient whatever the model does
    if (
      row.chosen.every((x, i) => x === row.rejected[i]) &&
      row.chosen_mask.every((x, i) => x === row.rejected_mask[i])
    ) {
      stats.identical++;
      continue;
    }
    if (long) stats.truncated++;
    const real = Math.min(c.ids.length, L) + Math.min(j.ids.length, L);
    stats.tokens += real;
    stats.padding += 2 * L - real;
    stats.rows++;
    store.add(row);
  }
}
