// Worker side of EncodePool: loads the tokenizer once, encodes batches of texts, returns the ids of a
// batch as one transferable Int32Array plus per-document end offsets.
import { Tokenizer } from "./tokenizer.ts";

declare const self: Worker;
let tok: Tokenizer | null = null;

self.onmessage = (ev: MessageEvent) => {
  const m = ev.data;
  if (m.type === "init") {
    tok = Tokenizer.fromDir(m.dir);
    return;
  }
  const ids: number[] = [];
  const ends = new Int32Array(m.texts.length);
  m.texts.forEach((t: string, i: number) => {
    tok!.encode(t, ids);
    if (m.eos >= 0) ids.push(m.eos);
    ends[i] = ids.length;
  });
  const flat = Int32Array.from(ids);
  self.postMessage({ id: m.id, flat, ends }, [flat.buffer, ends.buffer]);
};
