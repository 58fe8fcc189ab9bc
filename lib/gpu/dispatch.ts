// Recording work: every dispatch of a step goes into one command encoder and one compute pass, and is
// submitted at flush() (a readback, or the end of a step) — one submit per step. Bind groups are
// cached by pipeline and buffer identity (pooled buffers come back in the same order every step, so
// they keep hitting), and uniform buffers by their bytes (shapes repeat every step).
import { gpu, Usage, freeBuffer, takeDeviceErrors } from "./context.ts";
import { bufferId, onTrim } from "./pool.ts";
import { pipelineId, checkPipelines } from "./pipelines.ts";
import { settle } from "./wait.ts";
import { type Binding, bindingBytes, isBuffer, maxBindingBytes } from "./bindings.ts";

export type { Binding };

let encoder: GPUCommandEncoder | null = null;
let pass: GPUComputePassEncoder | null = null;
let recorded = 0;
const bindGroups = new Map<string, GPUBindGroup>();
const uniforms = new Map<string, GPUBuffer>();
const MAX_BIND_GROUPS = 16384;
const MAX_UNIFORMS = 4096;
let dispatches = 0;
let submits = 0;
// dispatches per kernel (the pipeline's label, its kernel's name): what bench/train.ts breaks a step into
const byKernel = new Map<string, number>();

function getEncoder(): GPUCommandEncoder {
  encoder ??= gpu().device.createCommandEncoder();
  return encoder;
}

function getPass(): GPUComputePassEncoder {
  pass ??= getEncoder().beginComputePass();
  return pass;
}

function endPass(): void {
  if (pass) {
    pass.end();
    pass = null;
  }
}

/**
 * Scalars for a kernel's uniform struct. Give u32/i32/f32 fields in declaration order as
 * [value, type] pairs; every field here is 4 bytes, so the std140-like layout is just packing
 * (pad to 16 bytes at the end).
 */
export type Scalar = number | [number, "u32" | "i32" | "f32"];

function uniformBuffer(values: Scalar[]): GPUBuffer {
  const n = Math.max(4, Math.ceil(values.length / 4) * 4);
  const data = new ArrayBuffer(n * 4);
  const u = new Uint32Array(data),
    i = new Int32Array(data),
    f = new Float32Array(data);
  values.forEach((v, k) => {
    const [x, t] = Array.isArray(v) ? v : [v, "u32" as const];
    if (t === "f32") f[k] = x;
    else if (t === "i32") i[k] = x;
    else u[k] = x;
  });
  const key = Array.from(u).join(",");
  let b = uniforms.get(key);
  if (b) return b;
  if (uniforms.size >= MAX_UNIFORMS) dropCaches();
  b = gpu().device.createBuffer({ size: n * 4, usage: Usage.UNIFORM | Usage.COPY_DST, mappedAtCreation: true });
  new Uint32Array(b.getMappedRange()).set(u);
  b.unmap();
  uniforms.set(key, b);
  return b;
}

// Cached bind groups may still be referenced by recorded work, so caches are dropped only after a flush.
let dropRequested = false;
function dropCaches(): void {
  dropRequested = true;
}
function reallyDrop(): void {
  for (const bg of bindGroups.values()) (bg as any).destroy?.();
  bindGroups.clear();
  for (const b of uniforms.values()) freeBuffer(b);
  uniforms.clear();
  dropRequested = false;
}
onTrim(() => {
  flushNoWait();
  reallyDrop();
});

function bindGroup(p: GPUComputePipeline, bindings: Binding[], uniform: GPUBuffer | null): GPUBindGroup {
  let key = `${pipelineId(p)}`;
  const entries: GPUBindGroupEntry[] = [];
  bindings.forEach((b, k) => {
    const r = isBuffer(b) ? { buffer: b } : b;
    key += `,${bufferId(r.buffer)}:${r.offset ?? 0}:${r.size ?? -1}`;
    entries.push({ binding: k, resource: r as GPUBufferBinding });
  });
  if (uniform) {
    key += `,u${bufferId(uniform)}`;
    entries.push({ binding: bindings.length, resource: { buffer: uniform } });
  }
  let bg = bindGroups.get(key);
  if (bg) return bg;
  if (bindGroups.size >= MAX_BIND_GROUPS) dropCaches();
  bg = gpu().device.createBindGroup({ layout: p.getBindGroupLayout(0), entries });
  bindGroups.set(key, bg);
  return bg;
}

/**
 * Record one dispatch. Bindings in the kernel's order (inputs, then outputs); the uniform struct,
 * when `scalars` is given, binds last.
 */
export function dispatch(
  p: GPUComputePipeline,
  bindings: Binding[],
  scalars: Scalar[] | null,
  grid: [number, number?, number?],
): void {
  const [x, y = 1, z = 1] = grid;
  if (x === 0 || y === 0 || z === 0) return;
  const max = gpu().limits.maxComputeWorkgroupsPerDimension ?? 65535;
  if (x > max || y > max || z > max)
    throw new Error(`dispatch grid ${x}x${y}x${z} is over the adapter's ${max} per dimension`);
  // an op over a tensor bigger than one binding must split its dispatches (bindings.ts): refuse here
  // rather than let the driver bind a clamped window and compute on part of the tensor
  const cap = maxBindingBytes();
  for (let k = 0; k < bindings.length; k++)
    if (bindingBytes(bindings[k]!) > cap)
      throw new Error(
        `${p.label}: binding ${k} covers ${bindingBytes(bindings[k]!)} bytes, over the ${cap}-byte binding limit (the op must split)`,
      );
  const bg = bindGroup(p, bindings, scalars ? uniformBuffer(scalars) : null);
  const ps = getPass();
  ps.setPipeline(p);
  ps.setBindGroup(0, bg);
  ps.dispatchWorkgroups(x, y, z);
  recorded++;
  dispatches++;
  byKernel.set(p.label, (byKernel.get(p.label) ?? 0) + 1);
}

/** Record a buffer-to-buffer copy (ends the current compute pass; the next dispatch opens another). */
export function copyBuffer(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
  endPass();
  getEncoder().copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
  recorded++;
}

/** Record zero-filling of a buffer range. */
export function clearBuffer(b: GPUBuffer, offset = 0, bytes?: number): void {
  endPass();
  getEncoder().clearBuffer(b, offset, bytes);
  recorded++;
}

/** Whether work is recorded but not submitted (uploads must then flush first, see readback.ts). */
export function hasPending(): boolean {
  return recorded > 0;
}

/** Submit what is recorded, without waiting for it. */
export function flushNoWait(): void {
  if (!encoder) return;
  endPass();
  const cb = encoder.finish();
  gpu().device.queue.submit([cb]);
  (cb as any)._destroy?.(); // bun-webgpu frees command buffers only by hand
  encoder = null;
  recorded = 0;
  submits++;
  if (dropRequested) reallyDrop();
}

/** Submit what is recorded and wait until the GPU has done it; surfaces kernel compile errors. */
export async function flush(): Promise<void> {
  flushNoWait();
  await checkPipelines();
  await settle(gpu().device.queue.onSubmittedWorkDone());
  takeDeviceErrors();
}

/** Counters since the process started; `byKernel` is a copy, so two calls can be subtracted. */
export function dispatchStats() {
  return { dispatches, submits, bindGroups: bindGroups.size, uniforms: uniforms.size, byKernel: new Map(byKernel) };
}
