// Tensors larger than one storage binding. A tensor is one GPUBuffer up to the adapter's maxBufferSize
// (4 GiB on lavapipe), but a kernel sees at most maxStorageBufferBindingSize bytes of it at once (128 MiB
// on lavapipe, the WebGPU minimum; Qwen2.5-0.5B's embedding is 544 MB in f32). Ops over such a tensor
// run one dispatch per range of it, each binding a window of the buffer: `span` makes the window (its
// offset aligned down to minStorageBufferOffsetAlignment, the element `base` where the wanted range
// starts inside it), `elementRanges` cuts an elementwise op's n elements into aligned ranges.
// BUNLM_MAX_BINDING=bytes (or setMaxBinding, for tests) lowers the cap below the adapter's, so every
// split path runs here on tiny tensors; dispatch() refuses any binding over the cap, so an op that
// forgot to split fails loudly instead of reading a clamped window.
import { InputError } from "../base/errors.ts";
import { gpu } from "./context.ts";

export type Binding = GPUBuffer | { buffer: GPUBuffer; offset?: number; size?: number };

let override: number | null = null;
let cached: { key: string; cap: number } | null = null;

/** Lower the binding cap (tests); null goes back to BUNLM_MAX_BINDING or the adapter's own limit. */
export function setMaxBinding(bytes: number | null): void {
  override = bytes;
  cached = null;
}

/** The offset a binding's window must start at a multiple of (bytes). */
export function bindingAlign(): number {
  return gpu().limits.minStorageBufferOffsetAlignment ?? 256;
}

/**
 * The most bytes one storage binding may cover: the adapter's maxStorageBufferBindingSize (and
 * maxBufferSize), lowered by setMaxBinding or BUNLM_MAX_BINDING; a multiple of the offset alignment.
 */
export function maxBindingBytes(): number {
  const env = process.env.BUNLM_MAX_BINDING;
  const key = `${override}|${env}`;
  if (cached?.key === key) return cached.cap;
  const l = gpu().limits;
  const own = Math.min(l.maxStorageBufferBindingSize ?? 134217728, l.maxBufferSize ?? Infinity);
  let want = override;
  if (want === null && env !== undefined && env !== "") {
    want = Number(env);
    if (!Number.isInteger(want) || want <= 0)
      throw new InputError(`BUNLM_MAX_BINDING=${env}: expected a positive whole number of bytes`);
  }
  const align = bindingAlign();
  // a window also holds the alignment slack before its first element, so the cap keeps a few of them
  const cap = Math.max(8 * align, Math.floor(Math.min(own, want ?? own) / align) * align);
  cached = { key, cap };
  return cap;
}

/** Elements (4 bytes each, or `bytes`) a window may hold wherever it starts: the cap less the alignment slack. */
export function maxSpanElements(bytes = 4): number {
  return Math.floor((maxBindingBytes() - bindingAlign() - 16) / bytes);
}

/** Bytes a binding covers. */
export function bindingBytes(b: Binding): number {
  if (isBuffer(b)) return b.size;
  return b.size ?? b.buffer.size - (b.offset ?? 0);
}

export function isBuffer(b: Binding): b is GPUBuffer {
  return typeof (b as any).mapAsync === "function";
}

/** A binding of elements [start, start + count) of a buffer of 4-byte (or 2-byte) elements; base: start inside it. */
export interface Span {
  binding: Binding;
  base: number;
}

/**
 * The window that holds elements [start, start + count): the whole buffer when it fits the cap (the
 * unsplit ops' binding, so their bind groups stay the same) unless `window` asks for one, else a range
 * from the aligned offset at or below start, its size rounded up to 16 bytes (vec4 bindings) within
 * the buffer. `bytes` per element: 4, or 2 for half-width weights (packed in pairs; the aligned offset
 * is a whole word, so a window's element 0 is the low half of its word 0).
 */
export function span(buffer: GPUBuffer, start: number, count: number, window = false, bytes = 4): Span {
  const cap = maxBindingBytes();
  if (buffer.size <= cap && !window) return { binding: buffer, base: start };
  const align = bindingAlign();
  const offset = Math.floor((start * bytes) / align) * align;
  const end = Math.min(buffer.size, Math.ceil(((start + count) * bytes) / 16) * 16);
  const size = end - offset;
  if (size > cap) throw new Error(`span: ${count} elements from ${start} need ${size} bytes, over the ${cap} cap`);
  return { binding: { buffer, offset, size }, base: start - offset / bytes };
}

/**
 * [start, count) ranges covering n elements, each within the cap, starting at multiples of `multiple`
 * elements and of the offset alignment (so each window's base is 0): one range when n fits.
 */
export function elementRanges(n: number, multiple = 1): [number, number][] {
  const cap = maxBindingBytes();
  if (n * 4 <= cap) return [[0, n]];
  const unit = lcm(multiple, bindingAlign() / 4);
  const chunk = Math.floor(cap / 4 / unit) * unit;
  if (chunk === 0) throw new Error(`elementRanges: a ${multiple}-element unit is over the ${cap}-byte binding cap`);
  const out: [number, number][] = [];
  for (let s = 0; s < n; s += chunk) out.push([s, Math.min(chunk, n - s)]);
  return out;
}

/** Element ranges of whole rows: [first row, rows) with rows × rowLen elements (of `bytes`) within a window. */
export function rowRanges(rows: number, rowLen: number, totalBytes: number, bytes = 4): [number, number][] {
  if (totalBytes <= maxBindingBytes()) return [[0, rows]];
  const per = Math.floor(maxSpanElements(bytes) / rowLen);
  if (per < 1) throw new Error(`a row of ${rowLen} elements is over the ${maxBindingBytes()}-byte binding cap`);
  const out: [number, number][] = [];
  for (let r = 0; r < rows; r += per) out.push([r, Math.min(per, rows - r)]);
  return out;
}

function gcd(a: number, b: number): number {
  return b ? gcd(b, a % b) : a;
}
function lcm(a: number, b: number): number {
  return (a / gcd(a, b)) * b;
}
