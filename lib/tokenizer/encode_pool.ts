// Encoding on several cores: documents go to workers in batches (~1 MB), results come back in input
// order. The main thread only reads, batches and prints, so on 2 cores the regex + BPE work of both
// workers overlaps the I/O.
import type { Doc } from "../io/readers.ts";

const BATCH_BYTES = 1 << 20;
const BATCH_DOCS = 2048;

interface Pending {
  rows: (Record<string, unknown> | undefined)[];
  done: Promise<{ flat: Int32Array; ends: Int32Array }>;
}

export class EncodePool {
  private workers: Worker[] = [];
  private waiting = new Map<number, (r: { flat: Int32Array; ends: Int32Array }) => void>();
  private nextId = 0;
  private failed: Error | null = null;

  constructor(dir: string, threads: number) {
    for (let i = 0; i < threads; i++) {
      const w = new Worker(new URL("./encode_worker.ts", import.meta.url).href);
      w.onmessage = (ev) => {
        const r = this.waiting.get(ev.data.id)!;
        this.waiting.delete(ev.data.id);
        r(ev.data);
      };
      w.onerror = (e) => {
        this.failed = new Error(`encoding worker failed: ${e.message}`);
      };
      w.postMessage({ type: "init", dir });
      this.workers.push(w);
    }
  }

  private send(texts: string[], eos: number): Pending["done"] {
    const id = this.nextId++;
    const w = this.workers[id % this.workers.length]!;
    const p = new Promise<{ flat: Int32Array; ends: Int32Array }>((res) => this.waiting.set(id, res));
    w.postMessage({ type: "batch", id, texts, eos });
    return p;
  }

  async *encodeAll(
    docs: AsyncIterable<Doc>,
    onDoc: (d: Doc) => void,
    eos: number,
  ): AsyncGenerator<[Int32Array, Record<string, unknown> | undefined]> {
    const queue: Pending[] = [];
    let texts: string[] = [],
      rows: Pending["rows"] = [],
      size = 0;
    const flushBatch = () => {
      if (!texts.length) return;
      queue.push({ rows, done: this.send(texts, eos) });
      texts = [];
      rows = [];
      size = 0;
    };
    const drainOne = async function* (this: EncodePool) {
      const p = queue.shift()!;
      const { flat, ends } = await p.done;
      if (this.failed) throw this.failed;
      let start = 0;
      for (let i = 0; i < ends.length; i++) {
        yield [flat.subarray(start, ends[i]), p.rows[i]] as [Int32Array, Record<string, unknown> | undefined];
        start = ends[i]!;
      }
    }.bind(this);
    for await (const d of docs) {
      if (this.failed) throw this.failed;
      onDoc(d);
      texts.push(d.text);
      rows.push(d.row);
      size += d.text.length;
      if (size >= BATCH_BYTES || texts.length >= BATCH_DOCS) {
        flushBatch();
        // keep every worker busy with two batches, no more: memory stays bounded
        while (queue.length > 2 * this.workers.length) yield* drainOne();
      }
    }
    flushBatch();
    while (queue.length) yield* drainOne();
  }

  close(): void {
    for (const w of this.workers) w.terminate();
  }
}
