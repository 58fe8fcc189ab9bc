// A buffer pool: storage buffers are recycled by size class, so a training step that allocates the
// same intermediates every step allocates nothing after the first one, and bind groups (cached by
// buffer identity in dispatch.ts) keep hitting. Size classes are 4 per power of two (at most 25% slack).
import { gpu, Usage, freeBuffer } from "./context.ts";
import { maxBindingBytes } from "./bindings.ts";

const STORAGE = Usage.STORAGE | Usage.COPY_SRC | Usage.COPY_DST;
const free = new Map<number, GPUBuffer[]>();
const ids = new WeakMap<GPUBuffer, number>();
const sizes = new WeakMap<GPUBuffer, number>();
let nextId = 1;
let live = 0; // bytes handed out
let pooled = 0; // bytes sitting in the free lists
let peak = 0; // the most bytes handed out at once since the last resetPeak()

export function sizeClass(bytes: number): number {
  const b = Math.max(256, bytes);
  const p = 2 ** Math.floor(Math.log2(b));
  const step = Math.max(64, p / 4);
  return Math.ceil(b / step) * step;
}

/** A stable small integer per buffer: the key of bind-group and uniform caches. */
export function bufferId(b: GPUBuffer): number {
  let id = ids.get(b);
  if (id === undefined) ids.set(b, (id = nextId++));
  return id;
}

/**
 * The most bytes one tensor may have on this adapter: one buffer. Ops bind a tensor larger than one
 * storage binding in windows (bindings.ts).
 */
export function maxTensorBytes(): number {
  return gpu().limits.maxBufferSize ?? 268435456;
}

// A tensor that fits one binding never gets a buffer bigger than the binding cap (the size class's
// slack would otherwise push it over, and ops bind whole buffers of such tensors).
function poolSize(bytes: number): number {
  const size = sizeClass(bytes);
  const cap = maxBindingBytes();
  return bytes <= cap && size > cap ? cap : size;
}

export function formatBytes(n: number): string {
  const u = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) (n /= 1024), i++;
  return `${i ? n.toFixed(n < 10 ? 1 : 0) : n} ${u[i]}`;
}

/** A tensor bigger than the adapter binds at once (tensor.ts adds its shape to the message). */
export class TooLargeError extends Error {
  code = "E_TOO_LARGE";
  constructor(
    readonly bytes: number,
    readonly limit: number,
    what = `a ${formatBytes(bytes)} tensor`,
    hint = "",
  ) {
    super(`${what} is over this adapter's ${formatBytes(limit)} limit for one buffer${hint ? `; ${hint}` : ""}`);
  }
}

export function acquireBuffer(bytes: number): GPUBuffer {
  const size = poolSize(bytes);
  const list = free.get(size);
  const reused = list?.pop();
  live += size;
  if (live > peak) peak = live;
  if (reused) {
    pooled -= size;
    return reused;
  }
  const max = maxTensorBytes();
  if (size > max) throw new TooLargeError(bytes, max);
  const b = gpu().device.createBuffer({ size, usage: STORAGE });
  sizes.set(b, size);
  bufferId(b);
  return b;
}

export function releaseBuffer(b: GPUBuffer): void {
  const size = sizes.get(b);
  if (size === undefined) throw new Error("releaseBuffer: not a pooled buffer");
  live -= size;
  pooled += size;
  let list = free.get(size);
  if (!list) free.set(size, (list = []));
  list.push(b);
}

/** Really free the pooled (unused) buffers, e.g. between phases with different shapes. */
const trimListeners: (() => void)[] = [];
/** Caches that hold buffers (bind groups) register here to be dropped before buffers are freed. */
export function onTrim(f: () => void): void {
  trimListeners.push(f);
}

export function trimPool(): void {
  for (const f of trimListeners) f();
  for (const list of free.values()) for (const b of list) freeBuffer(b);
  free.clear();
  pooled = 0;
}

export function poolStats() {
  let count = 0;
  for (const l of free.values()) count += l.length;
  return { liveBytes: live, pooledBytes: pooled, pooledBuffers: count, peakBytes: peak };
}

/** Start measuring peakBytes afresh from what is handed out now (bench/train.ts, the recompute test). */
export function resetPeak(): void {
  peak = live;
}
