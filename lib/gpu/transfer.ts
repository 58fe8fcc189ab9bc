// Moving data between host and GPU. Reads copy into a pooled MAP_READ staging buffer, submit, and wait
// with the sleep loop (wait.ts). Writes use queue.writeBuffer, which runs before any command buffer
// submitted after it, so recorded-but-unsubmitted work that must see the old contents is flushed first.
// Big tensors (a 544 MB embedding) move in pieces of STAGING_MAX bytes, so neither a read nor a write
// holds a second copy of the whole tensor in staging memory.
import { gpu, Usage, MapMode } from "./context.ts";
import { sizeClass } from "./pool.ts";
import { copyBuffer, flush, flushNoWait, hasPending } from "./dispatch.ts";
import { settle } from "./wait.ts";

const staging = new Map<number, GPUBuffer[]>();
const STAGING_MAX = 32 * 1024 * 1024;

export async function readBuffer(src: GPUBuffer, bytes: number, srcOffset = 0): Promise<ArrayBuffer> {
  return (await readBuffers([{ buffer: src, bytes, offset: srcOffset }]))[0]!;
}

export function writeBuffer(dst: GPUBuffer, data: ArrayBufferView, dstOffset = 0): void {
  if (hasPending()) flushNoWait();
  const bytes = data.byteLength;
  if (bytes > STAGING_MAX) {
    const u8 = new Uint8Array(data.buffer, data.byteOffset, bytes);
    for (let at = 0; at < bytes; at += STAGING_MAX)
      writeBuffer(dst, u8.subarray(at, Math.min(bytes, at + STAGING_MAX)), dstOffset + at);
    return;
  }
  // writeBuffer wants a multiple of 4 bytes
  if (bytes % 4 === 0) {
    gpu().device.queue.writeBuffer(dst, dstOffset, data.buffer, data.byteOffset, bytes);
  } else {
    const padded = new Uint8Array(Math.ceil(bytes / 4) * 4);
    padded.set(new Uint8Array(data.buffer, data.byteOffset, bytes));
    gpu().device.queue.writeBuffer(dst, dstOffset, padded.buffer, 0, padded.byteLength);
  }
}

/**
 * Read several buffers with one submit and one wait (a training step's loss and gradient norm).
 * Copies are rounded up to whole 4-byte words (pooled buffers always have the room).
 */
export async function readBuffers(
  parts: { buffer: GPUBuffer; bytes: number; offset?: number }[],
): Promise<ArrayBuffer[]> {
  const total = parts.reduce((n, p) => n + Math.ceil(p.bytes / 4) * 4, 0);
  if (total === 0) return parts.map(() => new ArrayBuffer(0));
  if (total > STAGING_MAX) {
    const out: ArrayBuffer[] = [];
    for (const p of parts) out.push(await readLarge(p.buffer, p.bytes, p.offset ?? 0));
    return out;
  }
  const size = sizeClass(total);
  const list = staging.get(size) ?? [];
  staging.set(size, list);
  const st = list.pop() ?? gpu().device.createBuffer({ size, usage: Usage.MAP_READ | Usage.COPY_DST });
  let at = 0;
  const offs: number[] = [];
  for (const p of parts) {
    offs.push(at);
    copyBuffer(p.buffer, p.offset ?? 0, st, at, Math.ceil(p.bytes / 4) * 4);
    at += Math.ceil(p.bytes / 4) * 4;
  }
  await flush();
  await settle(st.mapAsync(MapMode.READ, 0, size));
  const range = st.getMappedRange(0, size);
  const out = parts.map((p, i) => range.slice(offs[i]!, offs[i]! + p.bytes));
  st.unmap();
  list.push(st);
  return out;
}

/** One buffer range of any size, read STAGING_MAX bytes at a time into one host buffer. */
async function readLarge(src: GPUBuffer, bytes: number, offset: number): Promise<ArrayBuffer> {
  const out = new Uint8Array(bytes);
  for (let at = 0; at < bytes; at += STAGING_MAX) {
    const n = Math.min(STAGING_MAX, bytes - at);
    const [piece] = await readBuffers([{ buffer: src, bytes: n, offset: offset + at }]);
    out.set(new Uint8Array(piece!), at);
  }
  return out.buffer;
}
