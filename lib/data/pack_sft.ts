import type { RowRecord } from "../io/readers.ts";
import type { KeySpec, RowStore } from "./row_store.ts";
import { conversation, type PackStats, type PackJob } from "./pack_common.ts";
import { InputError } from "../base/errors.ts";
import { tokenRoles } from "../tokenizer/roles.ts";

const WINDOW = 4096;

export function sftKeys(L: number): KeySpec[] {
  return [
    { name: "input_ids", dtype: "I32", shape: [L] },
    { name: "target_ids", dtype: "I32", shape: [L] },
    { name: "loss_mask", dtype: "U8", shape: [L] },
    { name: "position_ids", dtype: "I32", shape: [L] },
  ];
}

interface Conv {
  ids: number[];
  mask: number[];
  order: number;
}

/** Best-fit-decreasing: longest first, each into the fullest row it still fits. */
export function bestFitDecreasing(sizes: number[], capacity: number): number[][] {
  const order = sizes.map((_, i) => i).sort((a, b) => sizes[b]! - sizes[a]! || a - b);
  const bins: { free: number; items: number[] }[] = [];
  for (const i of order) {
    let best = -1;
    for (let b = 0; b < bins.length; b++) {
      const f = bins[b]!.free;
      if (f >= sizes[i]! && (best < 0 || f < bins[best]!.free)) best = b;
    }
    if (best < 0) bins.push({ free: capacity - sizes[i]!, items: [i] });
    else {
      bins[best]!.free -= sizes[i]!;
      bins[best]!.items.push(i);
    }
  }
  return bins.map((b) => b.items);
}

function writeRow(convs: Conv[], L: number, pad: number, store: RowStore, stats: PackStats): void {
  const input = new Int32Array(L).fill(pad),
    target = new Int32Array(L).fill(pad);
  const loss = new Uint8Array(L),
    pos = new Int32Array(L);
  let at = 0; // slot of the conversation's first token
  for (const c of convs) {
    const n = c.ids.length;
    for (let k = 0; k < n; k++) {
      const slot = at + k;
      if (slot < L) {
        input[slot] = c.ids[k]!;
        pos[slot] = k;
      }
      // target slot-1 is this token; it is trained only if it is an assistant token and not the first
      // token of the conversation (whose predecessor belongs to another conversation)
      if (slot >= 1 && slot - 1 < L) {
        target[slot - 1] = c.ids[k]!;
        loss[slot - 1] = k > 0 && c.mask[k] ? 1 : 0;
      }
    }
    at += n;
  }
  const used = Math.min(at, L);
  stats.tokens += used;
  stats.padding += L - used;
  stats.rows++;
  store.add({ input_ids: input, target_ids: target, loss_mask: loss, position_ids: pos });
}

export async function packSft(rows: AsyncIterable<RowRecord>, job: PackJob): Promise<void> {
  const { tok, store, L, overlong, stats } = job;
  const pad = tokenRoles(tok).pad;
  let window: Conv[] = [];
  const flush = () => {
    const bins = bestFitDecreasing(
      window.map((c) => c.ids.length),
      L + 1,
    );
    // rows in the order of their first conversation, for a deterministic file before shuffling
    bins.sort((a, b) => window[a[0]!]!.order - window[b[0]!]!.order);
    for (const b of bins)
      writeRow(
        b.map((i) => window[i]!),
        L,
        pad,
        store,
        stats,
      );
    window = [];
  };
  let order = 0;
  const sources = new Set<string>();
  for await (const r of rows) {
    stats.inputs++;
    let { ids, mask } = conversation(tok, r);
    // mask[0] is never trained (its target slot belongs to whatever precedes the conversation)
    if (!mask.some((x, k) => k > 0 && x)) {
      stats.no_assistant++;
      if (sources.size < 3) sources.add(r.source);
      continue;
    }
    if (ids.length > L + 1) {
      if (overlong === "drop") {
        stats.dropped++;
        continue;
      }
      ids = ids.slice(0, L + 1);
      mask = mask.slice(0, L + 1);
      stats.truncated++;
    }
    if (ids.length < 2) {
      stats.dropped++; // nothing to predict
      continue;
    }
    window.push({ ids, mask, order: order++ });
    if (window.length >= WINDOW) flush();
  }
  if (window.length) flush();
  if (stats.no_assistant > 0 && stats.no_assistant === stats.inputs)
    throw new InputError(
      `${[...sources].join(", ")}: none of the ${stats.inputs} conversations has an assistant turn, and sft trains only on the assistant's replies (each needs a {"role": "assistant", "content": ...} message)`,
    );
}
