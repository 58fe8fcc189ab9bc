// 2,000 training-like steps (matmul forward + backward + an SGD-style update, each step in a scope)
// must not grow memory: intermediates go back to the pool, bind groups and uniforms are cached, and
// with bun-webgpu command buffers are freed by hand. Run in a child process so RSS is this loop's alone.
import { expect, test } from "bun:test";
import { join } from "node:path";

const root = join(import.meta.dir, "..", "..");

for (const provider of ["dawn", "bun"]) {
  test(`${provider}: RSS stays flat over 2000 matmul forward+backward steps`, () => {
    const p = Bun.spawnSync([process.execPath, join(import.meta.dir, "memory_loop.ts"), "2000"], {
      cwd: root,
      env: { ...process.env, BUNLM_WEBGPU: provider },
    });
    const out = p.stdout.toString();
    if (p.exitCode !== 0) throw new Error(p.stderr.toString());
    const r = JSON.parse(out.trim().split("\n").pop()!);
    // after warm-up (step 200) the pool holds every size a step needs; allow 16 MiB of allocator noise,
    // where a leak of one 7 KB bind group per dispatch would add ~70 MB over these 1800 steps
    expect(r.rss_growth_mib).toBeLessThan(16);
    expect(r.pool_live_bytes).toBe(r.param_bytes);
    expect(r.loss_last).toBeLessThan(r.loss_first); // the loop really trains
  }, 300_000);
}
