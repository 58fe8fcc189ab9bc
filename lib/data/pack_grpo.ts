import type { RowRecord } from "../io/readers.ts";
import type { KeySpec } from "./row_store.ts";
import { InputError } from "../base/errors.ts";
import { renderChat, CHATML_TEMPLATE } from "../tokenizer/chat_template.ts";
import { messagesOf, padTo, where, type PackJob } from "./pack_common.ts";
import { tokenRoles } from "../tokenizer/roles.ts";

export function grpoKeys(L: number, group: number, R: number): KeySpec[] {
  const keys: KeySpec[] = [
    { name: "prompts", dtype: "I32", shape: [L] },
    { name: "prompt_mask", dtype: "U8", shape: [L] },
  ];
  if (group > 0) {
    keys.push({ name: "responses", dtype: "I32", shape: [group, R] });
    keys.push({ name: "masks", dtype: "U8", shape: [group, R] });
    keys.push({ name: "rewards", dtype: "F32", shape: [group] });
  }
  return keys;
}

/** The group size of an offline dataset (responses per prompt), from its first row; 0 when online. */
export function offlineGroup(r: RowRecord): number {
  const x = r.row.responses;
  return Array.isArray(x) ? x.length : 0;
}

export async function packGrpo(rows: AsyncIterable<RowRecord>, job: PackJob, R: number, group: number): Promise<void> {
  const { tok, store, L, overlong, stats } = job;
  const pad = tokenRoles(tok).pad;
  for await (const r of rows) {
    stats.inputs++;
    const { prompt, responses, rewards, ...side } = r.row;
    if (prompt === undefined) throw new InputError(`${where(r)}: no field "prompt"`);
    const chat = typeof prompt !== "string";
    const text = chat
      ? renderChat(tok.config.chat_template ?? CHATML_TEMPLATE, messagesOf(prompt, r, "prompt"), true)
      : (prompt as string);
    let ids = tok.encode(text);
    if (ids.length > L) {
      if (overlong === "drop") {
        stats.dropped++;
        continue;
      }
      ids = ids.slice(ids.length - L);
      stats.truncated++;
    }
    const mask = new Uint8Array(L);
    mask.fill(1, L - ids.length);
    const row: Record<string, ArrayLike<number>> = { prompts: padTo(ids, L, pad, true), prompt_mask: mask };
    stats.tokens += ids.length;
    stats.padding += L - ids.length;
    if (group > 0) {
      if (!Array.isArray(responses) || responses.length !== group || !responses.every((x) => typeof x === "string"))
        throw new InputError(
          `${where(r)}: "responses" must be a list of ${group} strings (the group size set by the first row)`,
        );
      if (
        !Array.isArray(rewards) ||
        rewards.length !== group ||
        !rewards.every((x) => typeof x === "number" && Number.isFinite(x))
      )
        throw new InputError(`${where(r)}: "rewards" must be a list of ${group} finite numbers, one per response`);
      const end = chat ? tokenRoles(tok).turnEnd : tokenRoles(tok).docEnd;
      const resp = new Int32Array(group * R),
        m = new Uint8Array(group * R);
      responses.forEach((s: string, g: number) => {
        const ri = [...tok.encode(s), end].slice(0, R);
        resp.set(padTo(ri, R, pad), g * R);
        m.fill(1, g * R, g * R + ri.length);
      });
      row.responses = resp;
      row.masks = m;
      row.rewards = Float32Array.from(rewards as number[]);
    } else if (responses !== undefined || rewards !== undefined) {
      throw new InputError(
        `${where(r)}: "responses"/"rewards" appear, but the first row had none (offline rows must all carry them)`,
      );
    }
    stats.rows++;
    store.add(row, side);
  }
}
