// Data parallelism across MPI ranks (issue #18): every rank holds the whole model and optimizer,
// trains its slice of each global micro-batch, and the ranks sum their gradients before the update,
// so N ranks × batch B follow the trajectory of one rank with batch N·B.
//   deal:      the sampler draws the global micro-batch (N·B rows) exactly as one process would;
//              rank r takes rows [r·B, (r+1)·B). Every rank runs the same sampler, so nothing is sent.
//   gradients: host-staged all-reduce in buckets of BUCKET_BYTES: one readBuffers per bucket, an
//              MPI_Allreduce (sum) of the bucket, one upload per gradient. The next bucket's copy to
//              the host is submitted before this bucket's all-reduce blocks the JS thread, so the
//              GPU→host copy of one overlaps the network time of the other. There is no overlap with
//              backward: the tape records the whole backward before the first readback submits it,
//              and the bindings' collectives are blocking (the JS thread waits in MPI).
//   figures:   losses, metrics and token counts are additive shares (each already divided by the
//              global normalizer), so their sum over ranks is what one process would report.
//   agreement: stop flags and error states go through an all-reduce max, so every rank takes the
//              same branch at the same step; a cheap hash of every weight, compared across ranks
//              (max and min through one all-reduce max), catches replicas that drifted apart.
import type { Comm } from "../dist/index.ts";
import { readBuffers, writeBuffer } from "../gpu/index.ts";
import type { Tensor } from "../tensor/tensor.ts";

/** Bytes of gradient per all-reduce: under readBuffers' 32 MiB staging piece, so one bucket is one copy and one wait. */
export const BUCKET_BYTES = 16 * 1024 * 1024;

/** Steps between cross-rank weight checks (a check also runs before every checkpoint). */
export const CHECK_EVERY = 100;

const HASH_MAX = 0x7fffffff;

/** Stop codes agreed on at a step boundary (the larger wins). */
const STOP_CODES: Record<string, number> = { SIGINT: 1, SIGTERM: 2 };
const STOP_NAMES = ["", "SIGINT", "SIGTERM"];

export interface ReduceStats {
  /** seconds the JS thread spent in the all-reduce calls */
  seconds: number;
  /** gradient bytes each rank contributed */
  bytes: number;
}

/** Groups of consecutive tensors up to `limit` bytes each (a larger tensor is a bucket of its own). */
export function buckets<T extends { bytes: number }>(items: T[], limit = BUCKET_BYTES): T[][] {
  const out: T[][] = [];
  let cur: T[] = [],
    size = 0;
  for (const t of items) {
    if (cur.length && size + t.bytes > limit) {
      out.push(cur);
      cur = [];
      size = 0;
    }
    cur.push(t);
    size += t.bytes;
  }
  if (cur.length) out.push(cur);
  return out;
}

/**
 * A 31-bit hash of a tensor's bits (FNV-1a over 32-bit words): replicas that agree bit for bit hash
 * the same; one flipped bit changes it.
 */
export function weightHash(bits: ArrayBuffer): number {
  const w = new Uint32Array(bits, 0, bits.byteLength >> 2);
  let h = 0x811c9dc5;
  for (let i = 0; i < w.length; i++) h = Math.imul(h ^ w[i]!, 16777619);
  // a half-width tensor of odd length ends in two bytes
  for (const b of new Uint8Array(bits, w.length * 4)) h = Math.imul(h ^ b, 16777619);
  return (h >>> 0) & HASH_MAX;
}

export class DataParallel {
  constructor(readonly comm: Comm) {}

  get rank(): number {
    return this.comm.rank;
  }
  get size(): number {
    return this.comm.size;
  }

  /** This rank's contiguous slice of a global micro-batch of size·B rows. */
  deal(global: Uint32Array): Uint32Array {
    const B = global.length / this.size;
    return global.subarray(this.rank * B, (this.rank + 1) * B);
  }

  /** Σ over ranks, elementwise, in float64 (counts stay exact up to 2^53). */
  sum(values: number[]): number[] {
    const x = Float64Array.from(values);
    this.comm.allreduceSum(x);
    return Array.from(x);
  }

  /** The largest of every rank's code (0: all well); every rank gets the same answer. */
  agree(code: number): number {
    const x = Int32Array.of(code);
    this.comm.allreduceMax(x);
    return x[0]!;
  }

  /** The ranks' stop request at a step boundary: a signal seen by any rank stops them all. */
  agreeStop(signal: string | null): string | null {
    return STOP_NAMES[this.agree(signal ? (STOP_CODES[signal] ?? 1) : 0)] || null;
  }

  /**
   * Sum every gradient over the ranks, in place on the GPU. `extra` buffers (the step's loss
   * tensors, 4 bytes each) are read with the first bucket, so the step waits once for both;
   * their local values are returned.
   */
  async reduceGrads(grads: Tensor[], extra: GPUBuffer[] = []): Promise<{ extra: number[] } & ReduceStats> {
    const groups = buckets(grads);
    const read = (k: number) =>
      readBuffers([
        ...(k === 0 ? extra.map((buffer) => ({ buffer, bytes: 4 })) : []),
        ...groups[k]!.map((g) => ({ buffer: g.buffer, bytes: g.bytes })),
      ]);
    let seconds = 0,
      bytes = 0;
    let localExtra: number[] = [];
    let pending = groups.length ? read(0) : Promise.resolve([] as ArrayBuffer[]);
    for (let k = 0; k < groups.length; k++) {
      let parts = await pending;
      // the next bucket's copy goes to the GPU now, and runs while this one is all-reduced
      if (k + 1 < groups.length) pending = read(k + 1);
      if (k === 0) {
        localExtra = parts.slice(0, extra.length).map((b) => new Float32Array(b)[0]!);
        parts = parts.slice(extra.length);
      }
      const g = groups[k]!;
      const n = g.reduce((a, t) => a + t.size, 0);
      const flat = new Float32Array(n);
      let at = 0;
      for (const p of parts) {
        flat.set(new Float32Array(p), at);
        at += p.byteLength / 4;
      }
      const t0 = performance.now();
      this.comm.allreduceSum(flat);
      seconds += (performance.now() - t0) / 1000;
      bytes += flat.byteLength;
      at = 0;
      for (const t of g) {
        writeBuffer(t.buffer, flat.subarray(at, at + t.size));
        at += t.size;
      }
    }
    return { extra: localExtra, seconds, bytes };
  }

  /**
   * The names of the weights whose bits differ between ranks (empty when every replica agrees).
   * Reads every weight back: run it every CHECK_EVERY steps and before checkpoints, not every step.
   */
  async divergent(named: Map<string, Tensor>): Promise<string[]> {
    const names = [...named.keys()];
    const hashes: number[] = [];
    for (const group of buckets(names.map((name) => ({ name, bytes: named.get(name)!.bytes })))) {
      const got = await readBuffers(
        group.map(({ name }) => ({ buffer: named.get(name)!.storage, bytes: named.get(name)!.bytes })),
      );
      for (const b of got) hashes.push(weightHash(b));
    }
    // max of h and max of (HASH_MAX − h), i.e. HASH_MAX − min of h: the ranks agree where max = min
    const x = new Int32Array(2 * hashes.length);
    hashes.forEach((h, i) => {
      x[i] = h;
      x[hashes.length + i] = HASH_MAX - h;
    });
    this.comm.allreduceMax(x);
    return names.filter((_, i) => x[i]! !== HASH_MAX - x[hashes.length + i]!);
  }
}
