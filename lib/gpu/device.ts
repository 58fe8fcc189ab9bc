// Adapter and device acquisition, once per process.
// - refuses Dawn's "null-backend" adapter (no Vulkan driver: it accepts work and returns zeros)
//   and any adapter that fails a canary kernel, with a message that says how to get a driver;
// - BUNLM_ADAPTER picks among several adapters (index, or a substring of the adapter's description);
//   without it, a data-parallel rank takes the adapter of its local rank (useLocalRank), the ranks
//   of one machine sharing adapters round-robin when there are more ranks than adapters;
// - requests the adapter's full limits: bun-webgpu throws unless every limit is given, and the WebGPU
//   defaults (16 KiB workgroup memory, 256 invocations) would cripple the kernels;
// - requests shader-f16, subgroups and subgroup matrices where offered, and lists the adapter's
//   subgroup-matrix configs (the shapes its tensor cores multiply).
import { loadProvider, type Provider, type ProviderName } from "./provider.ts";
import { settle } from "./wait.ts";
import { filterNativeStderr } from "./native_stderr.ts";

export class GpuUnavailableError extends Error {
  code = "E_NO_GPU";
}

export const DRIVER_HINT =
  "install a Vulkan driver: on Debian 12 run `bash scripts/install-vulkan.sh` as root (Mesa >= 24 " +
  "mesa-vulkan-drivers and libvulkan1 from bookworm-backports); elsewhere your GPU vendor's Vulkan driver, " +
  "or Mesa >= 24 lavapipe for the CPU";

export interface AdapterSummary {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** a stable key for caches (autotune): provider plus what the adapter says it is */
  key: string;
}

export interface Gpu {
  provider: ProviderName;
  adapter: GPUAdapter;
  device: GPUDevice;
  info: AdapterSummary;
  /** features we requested and got; for bun-webgpu only the names its table gets right */
  features: Set<string>;
  limits: Record<string, number>;
  /** subgroup size range the adapter reports (0 when it has no subgroups) */
  subgroupMinSize: number;
  subgroupMaxSize: number;
  /** subgroup-matrix configs (f16 tensor cores on NVIDIA through Dawn), empty elsewhere */
  subgroupMatrixConfigs: readonly SubgroupMatrixConfig[];
}

/**
 * One shape the adapter multiplies on subgroup matrices: left M×K and right K×N of `componentType`,
 * result M×N of `resultComponentType` (Dawn's GPUSubgroupMatrixConfig, copied into a plain object).
 */
export interface SubgroupMatrixConfig {
  componentType: string;
  resultComponentType: string;
  M: number;
  N: number;
  K: number;
}

export function subgroupMatrixConfigs(info: any): SubgroupMatrixConfig[] {
  return [...(info?.subgroupMatrixConfigs ?? [])].map((c: any) => ({
    componentType: String(c.componentType),
    resultComponentType: String(c.resultComponentType),
    M: Number(c.M),
    N: Number(c.N),
    K: Number(c.K),
  }));
}

// Features worth having, when the adapter offers them. bun-webgpu's feature-name table is off by one
// for Dawn features from 327688 up, so with it we trust only the first three (DESIGN.md).
const WANTED = ["shader-f16", "subgroups", "timestamp-query", "chromium-experimental-subgroup-matrix"];
const TRUSTED_ON_BUN = new Set(["shader-f16", "subgroups", "timestamp-query"]);

function summarize(provider: ProviderName, adapter: GPUAdapter): AdapterSummary {
  const i: any = adapter.info ?? {};
  const s = (x: unknown) => (typeof x === "string" ? x : "");
  const vendor = s(i.vendor),
    architecture = s(i.architecture),
    device = s(i.device),
    description = s(i.description);
  return {
    vendor,
    architecture,
    device,
    description,
    key: [provider, vendor, architecture, device, description].join("|"),
  };
}

function isNullBackend(info: AdapterSummary): boolean {
  return [info.vendor, info.architecture, info.device, info.description].some((f) => /null/i.test(f));
}

async function candidates(gpu: GPU): Promise<GPUAdapter[]> {
  const out: GPUAdapter[] = [];
  const seen = new Set<string>();
  const opts: GPURequestAdapterOptions[] = [
    { powerPreference: "high-performance" },
    { powerPreference: "low-power" },
    {},
  ];
  for (const o of opts) {
    let a: GPUAdapter | null = null;
    try {
      a = await settle(gpu.requestAdapter(o));
    } catch {
      a = null;
    }
    if (!a) continue;
    const i: any = a.info ?? {};
    const k = `${i.vendor}|${i.architecture}|${i.device}|${i.description}`;
    if (seen.has(k)) continue;
    seen.add(k);
    out.push(a);
  }
  return out;
}

let localRank: number | null = null;

/**
 * This process is rank `rank` among the data-parallel ranks of its machine: call before getGpu(), so
 * that ranks spread over the adapters when several exist (BUNLM_ADAPTER, when set, still decides).
 */
export function useLocalRank(rank: number): void {
  localRank = rank;
}

function pickAdapter(list: GPUAdapter[], provider: ProviderName): GPUAdapter {
  const want = process.env.BUNLM_ADAPTER;
  const real = list.filter((a) => !isNullBackend(summarize(provider, a)));
  if (real.length === 0) {
    const why = list.length
      ? "the only adapter is Dawn's null backend (no Vulkan driver found)"
      : "no WebGPU adapter found";
    throw new GpuUnavailableError(`${why}; ${DRIVER_HINT}`);
  }
  if (!want) return real[localRank === null ? 0 : localRank % real.length]!;
  if (/^\d+$/.test(want)) {
    const a = real[Number(want)];
    if (!a)
      throw new GpuUnavailableError(
        `BUNLM_ADAPTER=${want}: only ${real.length} adapter(s): ${describeAll(real, provider)}`,
      );
    return a;
  }
  const a = real.find((x) => summarize(provider, x).key.toLowerCase().includes(want.toLowerCase()));
  if (!a) throw new GpuUnavailableError(`BUNLM_ADAPTER=${want} matches none of: ${describeAll(real, provider)}`);
  return a;
}

function describeAll(list: GPUAdapter[], provider: ProviderName): string {
  return list.map((a, i) => `${i}: ${summarize(provider, a).description || summarize(provider, a).device}`).join("; ");
}

function fullLimits(adapter: GPUAdapter): Record<string, number> {
  const lim: Record<string, number> = {};
  const src: any = adapter.limits;
  for (const k in src) if (typeof src[k] === "number") lim[k] = src[k];
  return lim;
}

let pending: Promise<Gpu> | null = null;

/** The process's one adapter and device. Throws GpuUnavailableError when there is no real one. */
export function getGpu(): Promise<Gpu> {
  pending ??= acquire();
  return pending;
}

async function acquire(): Promise<Gpu> {
  return openDevice(await loadProvider());
}

/**
 * The adapter and device a provider offers, refused (GpuUnavailableError) when it is Dawn's null
 * backend or fails the canary. getGpu() opens the process's one; tests open others (a null backend).
 */
export async function openDevice({ name, gpu }: Provider): Promise<Gpu> {
  const adapter = await filterNativeStderr(async () => pickAdapter(await candidates(gpu), name));
  const info = summarize(name, adapter);
  const offered = new Set<string>();
  for (const f of adapter.features) offered.add(f as string);
  const requiredFeatures = WANTED.filter((f) => offered.has(f) && (name === "dawn" || TRUSTED_ON_BUN.has(f)));
  const limits = fullLimits(adapter);
  let device: GPUDevice;
  try {
    device = await settle(
      adapter.requestDevice({ requiredFeatures: requiredFeatures as GPUFeatureName[], requiredLimits: limits }),
    );
  } catch (e) {
    throw new GpuUnavailableError(
      `could not create a WebGPU device on ${info.description || info.device}: ${(e as Error).message}`,
    );
  }
  const ai: any = adapter.info ?? {};
  const g: Gpu = {
    provider: name,
    adapter,
    device,
    info,
    features: new Set(requiredFeatures),
    limits,
    subgroupMinSize: requiredFeatures.includes("subgroups") ? Number(ai.subgroupMinSize ?? 0) : 0,
    subgroupMaxSize: requiredFeatures.includes("subgroups") ? Number(ai.subgroupMaxSize ?? 0) : 0,
    subgroupMatrixConfigs:
      name === "dawn" && requiredFeatures.includes("chromium-experimental-subgroup-matrix")
        ? subgroupMatrixConfigs(ai)
        : [],
  };
  await canary(g);
  return g;
}

// A driver that accepts work but computes nothing (Dawn's null backend, a broken ICD) must never
// pass for a GPU: write a known pattern with a kernel and read it back.
async function canary(g: Gpu): Promise<void> {
  const { device } = g;
  const n = 64;
  const code = `@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) id: vec3u) { out[id.x] = id.x * 3u + 1u; }`;
  const pipeline = device.createComputePipeline({
    layout: "auto",
    compute: { module: device.createShaderModule({ code }), entryPoint: "main" },
  });
  const buf = device.createBuffer({ size: n * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
  const read = device.createBuffer({ size: n * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const bg = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [{ binding: 0, resource: { buffer: buf } }],
  });
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bg);
  pass.dispatchWorkgroups(1);
  pass.end();
  enc.copyBufferToBuffer(buf, 0, read, 0, n * 4);
  device.queue.submit([enc.finish()]);
  await settle(read.mapAsync(GPUMapMode.READ));
  const got = new Uint32Array(read.getMappedRange().slice(0));
  read.unmap();
  buf.destroy();
  read.destroy();
  for (let i = 0; i < n; i++) {
    if (got[i] !== i * 3 + 1) {
      throw new GpuUnavailableError(
        `the WebGPU adapter "${g.info.description || g.info.device}" returns wrong results (a test kernel read back ${got[i]} for ${i * 3 + 1}); ${DRIVER_HINT}`,
      );
    }
  }
}
