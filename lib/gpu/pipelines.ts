// Kernel loading and the pipeline cache. A kernel is a file kernels/<name>.wgsl; a pipeline is that
// source with `defines` (rewrites of `const NAME ... = value;` lines, for what WGSL needs at compile
// time, such as per-thread array sizes) and `constants` (WGSL override values), cached by all three.
// Validation errors are reported with the kernel's file name at the next flush (dispatch.ts): pipeline
// creation is synchronous, error scopes are not.
import { log } from "../base/log.ts";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { gpu } from "./context.ts";
import { settle } from "./wait.ts";

export type Defines = Record<string, number | boolean>;
export type Constants = Record<string, number>;

const KERNEL_DIR = join(import.meta.dir, "..", "..", "kernels");
const sources = new Map<string, string>();
const pipelines = new Map<string, GPUComputePipeline>();
const pipelineIds = new WeakMap<GPUComputePipeline, number>();
const pendingChecks: Promise<string | null>[] = [];

/**
 * A kernel's source, with `// #include "path.wgsl"` lines (relative to kernels/) replaced by that
 * file: WGSL has no includes, and a helper shared by a kernel family should be written once.
 */
export function kernelSource(name: string): string {
  let s = sources.get(name);
  if (s === undefined) {
    s = readFileSync(join(KERNEL_DIR, `${name}.wgsl`), "utf8").replace(
      /^\/\/ #include "([^"]+)"$/gm,
      (_, path: string) => readFileSync(join(KERNEL_DIR, path), "utf8"),
    );
    sources.set(name, s);
  }
  return s;
}

function literal(v: number | boolean, type: string | undefined): string {
  if (typeof v === "boolean") return String(v);
  if (type === "u32") return `${v >>> 0}u`;
  if (type === "i32") return `${v | 0}i`;
  if (type === "f32") return Number.isInteger(v) ? `${v}.0` : `${v}`;
  return String(v);
}

export function applyDefines(name: string, src: string, defines: Defines): string {
  let out = src;
  for (const [k, v] of Object.entries(defines)) {
    const re = new RegExp(`const\\s+${k}\\s*(?::\\s*(\\w+))?\\s*=\\s*[^;]+;`);
    const m = out.match(re);
    if (!m) throw new Error(`kernels/${name}.wgsl has no \`const ${k} = ...;\` to define`);
    out = out.replace(re, `const ${k}${m[1] ? `: ${m[1]}` : ""} = ${literal(v, m[1])};`);
  }
  return out;
}

export function pipeline(name: string, defines: Defines = {}, constants: Constants = {}): GPUComputePipeline {
  const key = `${name}|${JSON.stringify(defines)}|${JSON.stringify(constants)}`;
  let p = pipelines.get(key);
  if (p) return p;
  const { device } = gpu();
  const code = applyDefines(name, kernelSource(name), defines);
  log.trace(`pipeline kernels/${name}.wgsl defines=${JSON.stringify(defines)} constants=${JSON.stringify(constants)}`);
  device.pushErrorScope("validation");
  const module = device.createShaderModule({ code, label: `kernels/${name}.wgsl` });
  p = device.createComputePipeline({ layout: "auto", label: name, compute: { module, entryPoint: "main", constants } });
  pendingChecks.push(
    device.popErrorScope().then(
      (e) => (e ? `kernels/${name}.wgsl (${JSON.stringify(defines)}): ${e.message}` : null),
      (e) => `kernels/${name}.wgsl: ${String(e)}`,
    ),
  );
  pipelines.set(key, p);
  pipelineIds.set(p, pipelines.size);
  return p;
}

export function pipelineId(p: GPUComputePipeline): number {
  return pipelineIds.get(p)!;
}

/** Throws the first kernel compile/validation error seen since the last call. */
export async function checkPipelines(): Promise<void> {
  if (pendingChecks.length === 0) return;
  const results = await settle(Promise.all(pendingChecks.splice(0)));
  const err = results.find((r) => r !== null);
  if (err) throw new Error(`WGSL error in ${err}`);
}
