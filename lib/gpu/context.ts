// The process-wide GPU context: `await initGpu()` once (commands and tests do it at start), then the
// synchronous helpers (pool, pipelines, dispatch) reach the device through `gpu()`.
import { getGpu, type Gpu } from "./device.ts";

let current: Gpu | null = null;

export async function initGpu(): Promise<Gpu> {
  if (!current) {
    current = await getGpu();
    // Errors outside an error scope (a bad bind group, aliasing) would otherwise only be logged;
    // keep them and throw at the next flush, so a test or a run fails instead of reading zeros.
    (current.device as any).onuncapturederror = (ev: any) => uncaptured.push(String(ev?.error?.message ?? ev));
  }
  return current;
}

const uncaptured: string[] = [];

/** Throws the first WebGPU error reported outside an error scope since the last call. */
export function takeDeviceErrors(): void {
  if (uncaptured.length) {
    const msg = uncaptured.splice(0).join("\n");
    throw new Error(`WebGPU error: ${msg}`);
  }
}

let scratch: GPUBuffer | null = null;
let scratchOut: GPUBuffer | null = null;
/** A small storage buffer to bind where a kernel's input is unused. */
export function scratchBuffer(): GPUBuffer {
  scratch ??= gpu().device.createBuffer({ size: 256, usage: Usage.STORAGE | Usage.COPY_DST });
  return scratch;
}
/** Another one for an unused output: a writable binding may not share a buffer with any other. */
export function scratchOutBuffer(): GPUBuffer {
  scratchOut ??= gpu().device.createBuffer({ size: 256, usage: Usage.STORAGE | Usage.COPY_DST });
  return scratchOut;
}

export function gpu(): Gpu {
  if (!current) throw new Error("lib/gpu: call `await initGpu()` before using the GPU");
  return current;
}

// Buffer usage and map flags are fixed by the WebGPU spec; spelled out so that nothing depends on
// which binding installed the globals.
export const Usage = {
  MAP_READ: 0x0001,
  MAP_WRITE: 0x0002,
  COPY_SRC: 0x0004,
  COPY_DST: 0x0008,
  UNIFORM: 0x0040,
  STORAGE: 0x0080,
} as const;
export const MapMode = { READ: 1, WRITE: 2 } as const;

/** Free a GPU object now. bun-webgpu frees nothing by itself and wants release() (DESIGN.md). */
export function freeBuffer(b: GPUBuffer): void {
  const x = b as any;
  if (typeof x.release === "function") x.release();
  else b.destroy();
}
