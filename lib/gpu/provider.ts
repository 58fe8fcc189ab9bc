// The two WebGPU providers behind one standard API (DESIGN.md "Two WebGPU providers"):
//   dawn — the `webgpu` package, Dawn's own N-API binding (default: follows the spec, frees objects
//          when collected, exposes shader-f16 and subgroup matrices on NVIDIA with the toggles below)
//   bun  — `bun-webgpu`, an FFI binding of an older Dawn (f32 only on NVIDIA, frees nothing by itself)
// BUNLM_WEBGPU=dawn|bun picks one. Everything above lib/gpu is written against navigator.gpu's API.

export type ProviderName = "dawn" | "bun";

export interface Provider {
  name: ProviderName;
  gpu: GPU;
}

// Dawn toggles: unsafe APIs unlock the experimental subgroup-matrix feature; the Vulkan memory model
// and f16-on-NVIDIA toggles let Dawn offer shader-f16 and subgroup matrices on NVIDIA's driver.
const DAWN_FLAGS = [
  "backend=vulkan",
  "enable-dawn-features=allow_unsafe_apis,use_vulkan_memory_model,vulkan_enable_f16_on_nvidia",
];

export function providerName(): ProviderName {
  const v = (process.env.BUNLM_WEBGPU ?? "dawn").toLowerCase();
  if (v === "dawn" || v === "webgpu") return "dawn";
  if (v === "bun" || v === "bun-webgpu") return "bun";
  throw new Error(`BUNLM_WEBGPU=${v}: expected "dawn" (the webgpu package) or "bun" (bun-webgpu)`);
}

export async function loadProvider(name: ProviderName = providerName()): Promise<Provider> {
  if (name === "dawn") {
    const { create, globals } = await import("webgpu");
    // The constants (GPUBufferUsage, ...) live on `globals`; the API expects them globally.
    for (const [k, v] of Object.entries(globals)) if (!(k in globalThis)) (globalThis as any)[k] = v;
    const gpu = create(process.platform === "linux" ? DAWN_FLAGS : DAWN_FLAGS.slice(1)) as GPU;
    // In Bun, if the object create() returns is collected, the next GC crashes the process.
    (globalThis as any).__bunlmDawnInstance = gpu;
    return { name, gpu };
  }
  const mod: any = await import("bun-webgpu");
  for (const [k, v] of Object.entries(mod.globalConstructors ?? {})) if (!(k in globalThis)) (globalThis as any)[k] = v;
  const gpu = mod.createGPUInstance() as GPU;
  (globalThis as any).__bunlmBunInstance = gpu;
  return { name, gpu };
}
