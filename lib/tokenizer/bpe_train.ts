// Byte-level BPE training (Sennrich et al. 2016, with GPT-2's byte alphabet): start from the 256
// byte tokens, and repeatedly merge the most frequent adjacent pair across the corpus's pre-tokens
// (weighted by how often each pre-token occurs) until the vocabulary is full.
//
// Incremental, as in Hugging Face's trainer: pair counts are kept up to date by re-counting only the
// words that contain the merged pair, and a lazy max-heap finds the next pair (stale entries are
// re-pushed with their current count when popped). Ties go to the smaller (left id, right id), so
// the result depends only on the input, never on hash or insertion order.

const SHIFT = 1048576; // 2^20: pair key = left * SHIFT + right (ids < 2^20, keys stay exact doubles)

export interface TrainResult {
  /** merges in rank order, as [left id, right id]; merge i creates token id 256 + i */
  merges: [number, number][];
  /** token id → bytes (0..255 are the single bytes) */
  tokens: Uint8Array[];
  /** tokens the corpus's pre-tokens encode to with all merges applied (for bytes-per-token) */
  corpusTokens: number;
}

class PairHeap {
  // parallel arrays: counts and keys; max-heap on (count, -key)
  private c: number[] = [];
  private k: number[] = [];
  get size() {
    return this.c.length;
  }
  private above(i: number, j: number): boolean {
    return this.c[i]! > this.c[j]! || (this.c[i] === this.c[j] && this.k[i]! < this.k[j]!);
  }
  private swap(i: number, j: number) {
    [this.c[i], this.c[j]] = [this.c[j]!, this.c[i]!];
    [this.k[i], this.k[j]] = [this.k[j]!, this.k[i]!];
  }
  push(count: number, key: number) {
    this.c.push(count);
    this.k.push(key);
    let i = this.c.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.above(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }
  pop(): [number, number] {
    const top: [number, number] = [this.c[0]!, this.k[0]!];
    const lc = this.c.pop()!,
      lk = this.k.pop()!;
    if (this.c.length) {
      this.c[0] = lc;
      this.k[0] = lk;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1,
          r = l + 1;
        let m = i;
        if (l < this.c.length && this.above(l, m)) m = l;
        if (r < this.c.length && this.above(r, m)) m = r;
        if (m === i) break;
        this.swap(i, m);
        i = m;
      }
    }
    return top;
  }
}

/**
 * wordCounts: UTF-8 bytes of each distinct pre-token (as a byte-level string key) → occurrences.
 * numMerges: how many merges to learn at most. minFrequency: stop when the best pair is rarer.
 */
export function trainBpe(
  words: Uint8Array[],
  counts: number[],
  numMerges: number,
  minFrequency = 2,
  onProgress?: (done: number) => void,
): TrainResult {
  const syms: Int32Array[] = words.map((w) => Int32Array.from(w));
  const lens = syms.map((s) => s.length);
  const pairCount = new Map<number, number>();
  const where = new Map<number, Set<number>>();

  const addWordPairs = (w: number, sign: number) => {
    const s = syms[w]!,
      n = lens[w]!,
      c = counts[w]! * sign;
    for (let i = 0; i + 1 < n; i++) {
      const key = s[i]! * SHIFT + s[i + 1]!;
      pairCount.set(key, (pairCount.get(key) ?? 0) + c);
      if (sign > 0) {
        let set = where.get(key);
        if (!set) where.set(key, (set = new Set()));
        set.add(w);
      }
    }
  };
  for (let w = 0; w < syms.length; w++) addWordPairs(w, 1);

  const heap = new PairHeap();
  for (const [key, c] of pairCount) heap.push(c, key);

  const tokens: Uint8Array[] = [];
  for (let b = 0; b < 256; b++) tokens.push(Uint8Array.of(b));
  const merges: [number, number][] = [];

  while (merges.length < numMerges && heap.size) {
    const [c, key] = heap.pop();
    const cur = pairCount.get(key) ?? 0;
    if (cur !== c) {
      if (cur > 0) heap.push(cur, key); // stale entry: requeue at its real count
      continue;
    }
    if (c < minFrequency) break;
    const left = Math.floor(key / SHIFT),
      right = key - left * SHIFT;
    const id = 256 + merges.length;
    merges.push([left, right]);
    const lt = tokens[left]!,
      rt = tokens[right]!;
    const nt = new Uint8Array(lt.length + rt.length);
    nt.set(lt);
    nt.set(rt, lt.length);
    tokens.push(nt);

    const touched = new Set<number>();
    for (const w of where.get(key) ?? []) {
      const s = syms[w]!,
        n = lens[w]!;
      let has = false;
      for (let i = 0; i + 1 < n; i++)
        if (s[i] === left && s[i + 1] === right) {
          has = true;
          break;
        }
      if (!has) continue;
      // re-count this word: subtract its old pairs, merge left to right, add its new pairs
      const before = new Map<number, number>();
      for (let i = 0; i + 1 < n; i++) before.set(s[i]! * SHIFT + s[i + 1]!, 0);
      addWordPairs(w, -1);
      let o = 0;
      for (let i = 0; i < n; i++) {
        if (i + 1 < n && s[i] === left && s[i + 1] === right) {
          s[o++] = id;
          i++;
        } else s[o++] = s[i]!;
      }
      lens[w] = o;
      addWordPairs(w, 1);
      for (const k of before.keys()) touched.add(k);
      for (let i = 0; i + 1 < o; i++) touched.add(s[i]! * SHIFT + s[i + 1]!);
    }
    pairCount.delete(key);
    where.delete(key);
    for (const k of touched) {
      const v = pairCount.get(k);
      if (v === undefined) continue;
      if (v <= 0) {
        pairCount.delete(k);
        where.delete(k);
      } else heap.push(v, k); // duplicates are fine: the stale ones are skipped when popped
    }
    if (onProgress && merges.length % 256 === 0) onProgress(merges.length);
  }

  let corpusTokens = 0;
  for (let w = 0; w < syms.length; w++) corpusTokens += lens[w]! * counts[w]!;
  return { merges, tokens, corpusTokens };
}
