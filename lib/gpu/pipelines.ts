// Kernel loading and the pipeline cache. A kernel is a file kernels/<name>.wgsl; a pipeline is that
// source with `defines` (rewrites of `const NAME ... = value;` lines, for what WGSL needs at compile
// time, such as per-thread array sizes; a string define instead picks an include, see kernelSource)
// and `constants` (WGSL override values), cached by all three.
// Validation errors are reported with the kernel's file name at the next flush (dispatch.ts): pipeline
// creation is synchronous, error scopes are not.
import { log } from "../base/log.ts";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { gpu } from "./context.ts";
import { settle } from "./wait.ts";

export type Defines = Record<string, number | boolean | string>;
export type Constants = Record<string, number>;

const KERNEL_DIR = join(import.meta.dir, "..", "..", "kernels");
const sources = new Map<string, string>();
const pipelines = new Map<string, GPUComputePipeline>();
const pipelineIds = new WeakMap<GPUComputePipeline, number>();
const pendingChecks: Promise<string | null>[] = [];

const INCLUDE = /^\/\/ #include "([^"]+)"$/gm;
// WGSL wants its directives before any declaration; an included file may bring its own
const DIRECTIVE = /^(?:enable|requires|diagnostic)\b[^\n]*;[ \t]*$/gm;

/**
 * A kernel's source, with `// #include "path.wgsl"` lines (relative to kernels/) replaced by that
 * file: WGSL has no includes, and a helper shared by a kernel family should be written once. A
 * `{NAME}` in the path is filled from `choices` (the string defines), so one kernel text expands
 * several ways: `common/subgroup_matrix_{SUBGROUP_MATRIX}.wgsl` is either the real subgroup-matrix
 * builtins or their emulation. Directives (`enable`, `requires`, `diagnostic`) move to the top, once each.
 */
export function kernelSource(name: string, choices: Record<string, string> = {}): string {
  const key = `${name}|${JSON.stringify(choices)}`;
  let s = sources.get(key);
  if (s === undefined) {
    const expand = (text: string, depth: number): string =>
      text.replace(INCLUDE, (_, path: string) => {
        const file = path.replace(/\{(\w+)\}/g, (_m, k: string) => {
          const v = choices[k];
          if (v === undefined)
            throw new Error(`kernels/${name}.wgsl includes "${path}": no string define ${k} picks it`);
          return v;
        });
        if (depth > 8) throw new Error(`kernels/${name}.wgsl: includes nest too deep at "${file}"`);
        return expand(readFileSync(join(KERNEL_DIR, file), "utf8"), depth + 1);
      });
    const body = expand(readFileSync(join(KERNEL_DIR, `${name}.wgsl`), "utf8"), 0);
    const directives = [...new Set((body.match(DIRECTIVE) ?? []).map((d) => d.trim()))];
    s = directives.length ? `${directives.join("\n")}\n${body.replace(DIRECTIVE, "")}` : body;
    sources.set(key, s);
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

/** Rewrites each numeric or boolean define's `const`; string defines pick includes and are skipped here. */
export function applyDefines(name: string, src: string, defines: Defines): string {
  let out = src;
  for (const [k, v] of Object.entries(defines)) {
    if (typeof v === "string") continue;
    const re = new RegExp(`const\\s+${k}\\s*(?::\\s*(\\w+))?\\s*=\\s*[^;]+;`);
    const m = out.match(re);
    if (!m) throw new Error(`kernels/${name}.wgsl has no \`const ${k} = ...;\` to define`);
    out = out.replace(re, `const ${k}${m[1] ? `: ${m[1]}` : ""} = ${literal(v, m[1])};`);
  }
  return out;
}

/** The WGSL a pipeline compiles: includes picked by the string defines, then the other defines applied. */
export function kernelCode(name: string, defines: Defines = {}): string {
  const choices: Record<string, string> = {};
  for (const [k, v] of Object.entries(defines)) if (typeof v === "string") choices[k] = v;
  return applyDefines(name, kernelSource(name, choices), defines);
}

export function pipeline(name: string, defines: Defines = {}, constants: Constants = {}): GPUComputePipeline {
  const key = `${name}|${JSON.stringify(defines)}|${JSON.stringify(constants)}`;
  let p = pipelines.get(key);
  if (p) return p;
  const { device } = gpu();
  const code = kernelCode(name, defines);
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
