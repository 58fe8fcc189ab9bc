// Without a Vulkan driver, Dawn has no adapter (webgpu) or only its null backend, which accepts work
// and returns zeros (bun-webgpu). Either way a command must exit non-zero with one line that says how
// to get a driver. VK_DRIVER_FILES pointing nowhere makes the Vulkan loader find no driver.
import { describe, expect, test } from "bun:test";
import { join } from "node:path";

const root = join(import.meta.dir, "..", "..");

function gpuInfo(env: Record<string, string>) {
  const p = Bun.spawnSync([process.execPath, "cmd/gpu-info.ts"], { cwd: root, env: { ...process.env, ...env } });
  return { code: p.exitCode, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
}

describe("adapter acquisition", () => {
  for (const provider of ["dawn", "bun"]) {
    test(`${provider}: no Vulkan driver → exit 1, one line naming the fix, nothing on stdout`, () => {
      const r = gpuInfo({
        BUNLM_WEBGPU: provider,
        VK_DRIVER_FILES: "/nonexistent/icd.json",
        VK_ICD_FILENAMES: "/nonexistent/icd.json",
      });
      expect(r.code).toBe(1);
      expect(r.stdout).toBe("");
      const ours = r.stderr.split("\n").filter((l) => l.startsWith("bunlm:"));
      expect(ours).toHaveLength(1);
      expect(ours[0]).toMatch(
        /^bunlm: no usable GPU: .*(null backend|no WebGPU adapter).*install a Vulkan driver.*install-vulkan\.sh/,
      );
    });

    test(`${provider}: the real adapter is found and described`, () => {
      const r = gpuInfo({ BUNLM_WEBGPU: provider });
      expect(r.code).toBe(0);
      const info = JSON.parse(r.stdout);
      expect(info.provider).toBe(provider);
      expect(info.adapter.description.length + info.adapter.device.length).toBeGreaterThan(0);
      expect(info.max_storage_binding).toBeGreaterThanOrEqual(128 << 20);
    });
  }

  test("BUNLM_ADAPTER that matches nothing is refused with the list of adapters", () => {
    const r = gpuInfo({ BUNLM_ADAPTER: "no-such-gpu-xyz" });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/BUNLM_ADAPTER=no-such-gpu-xyz matches none of: 0: /);
  });

  test("an unknown BUNLM_WEBGPU is refused", () => {
    const r = gpuInfo({ BUNLM_WEBGPU: "metal-direct" });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/BUNLM_WEBGPU=metal-direct: expected "dawn".*or "bun"/);
  });
});
