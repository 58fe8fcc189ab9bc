// seq (pre-training): documents joined with <|endoftext|> into one token stream, cut into rows of
// L+1 tokens that overlap by one (row k is stream[kL .. kL+L]), so every token but the very first is
// some row's target exactly once. input_ids = row[0:L], target_ids = row[1:L+1].
// With docMask, position_ids (L) restart at 0 at the start of each row and after every
// <|endoftext|>: the trainer resets RoPE positions there and lets a token attend only back to the
// last restart (no attention across documents).
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import type { RowRecord } from "../io/readers.ts";
import type { KeySpec, RowStore } from "./row_store.ts";
import { idsOf, stringField, type PackStats } from "./pack_common.ts";

export function seqKeys(L: number, docMask: boolean): KeySpec[] {
  const keys: KeySpec[] = [
    { name: "input_ids", dtype: "I32", shape: [L] },
    { name: "target_ids", dtype: "I32", shape: [L] },
  ];
  if (docMask) keys.push({ name: "position_ids", dtype: "I32", shape: [L] });
  return keys;
}

export async function packSeq(
  rows: AsyncIterable<RowRecord>,
  tok: Tokenizer,
  store: RowStore,
  L: number,
  field: string,
  docMask: boolean,
  stats: PackStats,
): Promise<void> {
  const eos = tok.specialId("<|endoftext|>");
  let buf = new Int32Array(Math.max(4 * (L + 1), 1 << 16));
  let n = 0; // tokens in buf
  const emit = () => {
    while (n >= L + 1) {
      const row = buf.subarray(0, L + 1);
      const out: Record<string, ArrayLike<number>> = {
        input_ids: row.subarray(0, L),
        target_ids: row.subarray(1, L + 1),
      };
      if (docMask) {
        const pos = new Int32Array(L);
        for (let i = 1; i < L; i++) pos[i] = row[i - 1] === eos ? 0 : pos[i - 1]! + 1;
        out.position_ids = pos;
      }
      store.add(out);
      stats.rows++;
      stats.tokens += L;
      buf.copyWithin(0, L, n); // keep the overlap token
      n -= L;
    }
  };
  for await (const r of rows) {
    stats.inputs++;
    const ids = idsOf(r, tok) ?? tok.encode(stringField(r, field));
    const withEos = ids.length && ids[ids.length - 1] === eos ? ids : [...ids, eos];
    if (n + withEos.length > buf.length) {
      const bigger = new Int32Array(Math.max(buf.length * 2, n + withEos.length));
      bigger.set(buf.subarray(0, n));
      buf = bigger;
    }
    buf.set(withEos, n);
    n += withEos.length;
    emit();
  }
  stats.tail_tokens = n > 1 ? n - 1 : 0;
}
