import type { RowRecord } from "../io/readers.ts";
import type { KeySpec } from "./row_store.ts";
import { idsOf, stringField, type PackJob } from "./pack_common.ts";
import { tokenRoles } from "../tokenizer/roles.ts";

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
  job: PackJob,
  field: string,
  docMask: boolean,
): Promise<void> {
  const { tok, store, L, stats } = job;
  const eos = tokenRoles(tok).docEnd;
  const bos = tok.addedBos;
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
    const given = idsOf(r, tok);
    // a text starts with the bos where the model's tokenizer adds one (Llama, Gemma), as transformers encodes it
    const ids =
      given ?? (bos === null ? tok.encode(stringField(r, field)) : [bos, ...tok.encode(stringField(r, field))]);
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
