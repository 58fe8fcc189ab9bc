// bun cmd/gpu-info.ts [--autotune]
// Prints the WebGPU adapter bunlm will use as one JSON line (provider, adapter, features, subgroup sizes,
// limits, matmul kernel); exits 1 with one line on stderr when there is no real adapter (no Vulkan
// driver, Dawn's null backend). --autotune times the matmul candidates and caches the pick.
import { defineCommand } from "citty";
import { initGpu } from "../lib/gpu/index.ts";
import { matmulVariant, subgroupMatrixPath } from "../lib/ops/index.ts";
import { autotuneMatmul } from "../lib/ops/matmul_autotune.ts";
import { runCli } from "./_cli.ts";

export const command = defineCommand({
  meta: { name: "gpu-info", description: "Show the WebGPU adapter and device bunlm uses" },
  args: {
    autotune: { type: "boolean", description: "time the matmul kernel variants and cache the fastest", default: false },
  },
  async run({ args }) {
    const g = await initGpu();
    const tuned = args.autotune ? await autotuneMatmul() : null;
    const out = {
      provider: g.provider,
      adapter: g.info,
      features: [...g.features],
      subgroup_sizes: [g.subgroupMinSize, g.subgroupMaxSize],
      subgroup_matrix_configs: g.subgroupMatrixConfigs.length,
      // what --precision mixed's matmuls run on: native tensor cores, the emulation, or off
      subgroup_matrix: subgroupMatrixPath(),
      max_storage_binding: g.limits.maxStorageBufferBindingSize,
      max_workgroup_storage: g.limits.maxComputeWorkgroupStorageSize,
      matmul: matmulVariant(),
      ...(tuned ? { autotune: tuned } : {}),
    };
    console.log(JSON.stringify(out));
  },
});

if (import.meta.main) await runCli(command);
