// Dawn's null backend, opened beside the real adapter: it reports subgroup matrices, compiles WGSL and
// validates pipelines, but computes nothing (it returns zeros). So it serves here for what this
// machine cannot run — the native subgroup-matrix kernels compile and create their pipelines — and the
// device layer must keep refusing it for computing.
import { beforeAll, describe, expect, test } from "bun:test";
import { create, globals } from "webgpu";
import { GpuUnavailableError, openDevice, subgroupMatrixConfigs } from "../../lib/gpu/device.ts";
import { kernelCode } from "../../lib/gpu/pipelines.ts";
import {
  sgmatDefines,
  sgmatVariants,
  sgmatWorkgroupBytes,
  resolveSubgroupMatrix,
  type SgmatTarget,
  type SgmatVariant,
} from "../../lib/ops/_matmul_variants.ts";

for (const [k, v] of Object.entries(globals)) if (!(k in globalThis)) (globalThis as any)[k] = v;
const instance = create(["backend=null", "enable-dawn-features=allow_unsafe_apis"]) as GPU;
// in Bun, a collected Dawn instance crashes the next GC (DESIGN.md)
(globalThis as any).__bunlmNullInstance = instance;

let adapter: GPUAdapter;
let device: GPUDevice;
let limits: Record<string, number>;

// The H200's f16 → f32 configs (DESIGN.md): the null adapter lists none, and checks none.
const H200_CONFIGS = [
  { M: 16, N: 16, K: 16 },
  { M: 16, N: 8, K: 16 },
  { M: 16, N: 8, K: 8 },
];
const H200_LIMITS = {
  maxComputeInvocationsPerWorkgroup: 1024,
  maxComputeWorkgroupSizeX: 1024,
  maxComputeWorkgroupStorageSize: 49152,
};
const LAYOUTS = [
  { transA: false, transB: false },
  { transA: false, transB: true },
  { transA: true, transB: false },
  { transA: true, transB: true },
];

beforeAll(async () => {
  adapter = (await instance.requestAdapter())!;
  limits = {};
  for (const k in adapter.limits) {
    const v = (adapter.limits as any)[k];
    if (typeof v === "number") limits[k] = v;
  }
  device = await adapter.requestDevice({
    requiredFeatures: ["chromium-experimental-subgroup-matrix", "shader-f16", "subgroups"] as GPUFeatureName[],
    requiredLimits: limits,
  });
});

/** Compile errors of a module, and the validation error of its pipeline (null when it is valid). */
async function build(code: string): Promise<{ errors: string[]; pipeline: string | null }> {
  device.pushErrorScope("validation");
  const module = device.createShaderModule({ code });
  const info = await module.getCompilationInfo();
  device.createComputePipeline({ layout: "auto", compute: { module, entryPoint: "main" } });
  const e = await device.popErrorScope();
  return {
    errors: info.messages.filter((m) => m.type === "error").map((m) => `${m.lineNum}: ${m.message}`),
    pipeline: e ? e.message : null,
  };
}

const fitsNull = (t: SgmatTarget, v: SgmatVariant) => {
  const wg = v.SUB_M * v.SUB_N * t.subgroupSize;
  return wg % 128 === 0 && wg <= 256 && sgmatWorkgroupBytes(t, v) <= limits.maxComputeWorkgroupStorageSize!;
};

describe("Dawn's null adapter", () => {
  test("is refused for computing, with the way to a driver", async () => {
    const err = await openDevice({ name: "dawn", gpu: instance }).catch((e) => e);
    expect(err).toBeInstanceOf(GpuUnavailableError);
    expect(err.message).toContain("the only adapter is Dawn's null backend");
    expect(err.message).toContain("install-vulkan.sh");
  });

  test("offers what the native kernel compiles against, and no config to copy", () => {
    const i: any = adapter.info;
    expect(`${i.device} ${i.description}`).toContain("null");
    for (const f of ["chromium-experimental-subgroup-matrix", "shader-f16", "subgroups"])
      expect(adapter.features.has(f)).toBe(true);
    expect(i.subgroupMaxSize).toBe(128);
    expect(subgroupMatrixConfigs(i)).toEqual([]);
    expect(limits.maxComputeInvocationsPerWorkgroup).toBe(256);
    expect(limits.maxComputeWorkgroupStorageSize).toBe(16384);
  });

  test("validates: a native kernel whose workgroup is not a multiple of 128 invocations is refused", async () => {
    // the check the other tests count on: 2 subgroups of 32 make 64 invocations
    const t: SgmatTarget = { path: "native", M: 16, N: 16, K: 16, subgroupSize: 32 };
    const v: SgmatVariant = { SUB_M: 2, SUB_N: 1, TM: 2, TN: 2, KT: 1 };
    const r = await build(kernelCode("matmul_sgmat", sgmatDefines(t, v, { ...LAYOUTS[0]!, accumulate: false })));
    expect(r.errors).toEqual([]);
    expect(r.pipeline).toContain("multiple of the device maxSubgroupSize (128)");
  });
});

describe("native subgroup-matrix matmul on the null adapter", () => {
  // Tilings for the null adapter itself (subgroups of 128, 256 invocations, 16 KiB), for each H200
  // shape, in every layout, with and without ACCUMULATE.
  for (const c of H200_CONFIGS) {
    test(`${c.M}×${c.N}×${c.K}, subgroups of 128: every tiling compiles and creates its pipeline`, async () => {
      const t: SgmatTarget = { path: "native", ...c, subgroupSize: 128 };
      const variants = sgmatVariants(t, limits);
      expect(variants.length).toBeGreaterThan(0);
      for (const v of variants)
        for (const l of LAYOUTS)
          for (const accumulate of [false, true]) {
            const code = kernelCode("matmul_sgmat", sgmatDefines(t, v, { ...l, accumulate }));
            const r = await build(code);
            expect({ v, l, accumulate, ...r }).toEqual({ v, l, accumulate, errors: [], pipeline: null });
          }
    });
  }

  // The H200's tilings (subgroups of 32, 48 KiB): every one compiles; those that also fit the null
  // device's limits create their pipeline, the H200's first pick among them.
  for (const c of H200_CONFIGS) {
    test(`${c.M}×${c.N}×${c.K}, subgroups of 32 (H200): every tiling compiles, the first creates its pipeline`, async () => {
      const t: SgmatTarget = { path: "native", ...c, subgroupSize: 32 };
      const variants = sgmatVariants(t, H200_LIMITS);
      expect(fitsNull(t, variants[0]!)).toBe(true);
      for (const v of variants)
        for (const l of LAYOUTS) {
          const r = await build(kernelCode("matmul_sgmat", sgmatDefines(t, v, { ...l, accumulate: false })));
          expect({ v, l, errors: r.errors }).toEqual({ v, l, errors: [] });
          if (fitsNull(t, v)) expect({ v, l, pipeline: r.pipeline }).toEqual({ v, l, pipeline: null });
        }
    });
  }

  test("the H200's description resolves to the native kernel on its largest f16 → f32 config", () => {
    const g = {
      features: new Set(["chromium-experimental-subgroup-matrix", "shader-f16", "subgroups"]),
      subgroupMinSize: 32,
      subgroupMaxSize: 32,
      subgroupMatrixConfigs: [
        { componentType: "f16", resultComponentType: "f16", M: 16, N: 16, K: 16 },
        { componentType: "f16", resultComponentType: "f32", M: 16, N: 8, K: 16 },
        { componentType: "f16", resultComponentType: "f32", M: 16, N: 16, K: 16 },
        { componentType: "i8", resultComponentType: "i32", M: 16, N: 16, K: 32 },
      ],
      info: { vendor: "nvidia", architecture: "", device: "", description: "NVIDIA H200", key: "" },
    };
    expect(resolveSubgroupMatrix(undefined, g)).toEqual({ path: "native", M: 16, N: 16, K: 16, subgroupSize: 32 });
    expect(resolveSubgroupMatrix("off", g)).toBeNull();
    expect(resolveSubgroupMatrix("emulate", g)).toEqual({ path: "emulate", M: 16, N: 16, K: 16, subgroupSize: 32 });
    // the null adapter's own description: subgroups of 4 to 128 are not one fixed size
    const n = { ...g, subgroupMinSize: 4, subgroupMaxSize: 128 };
    expect(resolveSubgroupMatrix(undefined, n)).toBeNull();
    expect(() => resolveSubgroupMatrix("native", n)).toThrow(
      'BUNLM_SUBGROUP_MATRIX=native: the adapter "NVIDIA H200" has subgroups of 4 to 128 invocations',
    );
  });

  test("the emulation's expansion is valid WGSL too", async () => {
    const t: SgmatTarget = { path: "emulate", M: 16, N: 8, K: 16, subgroupSize: 32 };
    for (const v of sgmatVariants(t, limits)) {
      const r = await build(kernelCode("matmul_sgmat", sgmatDefines(t, v, { ...LAYOUTS[3]!, accumulate: true })));
      expect({ v, ...r }).toEqual({ v, errors: [], pipeline: null });
    }
  });
});
