// Autotune through the command that runs it: every candidate is checked against the reference, the
// fastest correct one is chosen and cached for this adapter (in a scratch cache, not the user's).
import { expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { root, tmp } from "../train/helpers.ts";

test("gpu-info --autotune picks a correct variant and caches it per adapter", () => {
  const cache = tmp("autotune");
  const p = Bun.spawnSync([process.execPath, "cmd/gpu-info.ts", "--autotune"], {
    cwd: root,
    env: { ...process.env, BUNLM_CACHE_DIR: cache, BUNLM_AUTOTUNE_SIZE: "64" },
  });
  expect(p.exitCode).toBe(0);
  const info = JSON.parse(p.stdout.toString());
  const r = info.autotune;
  expect(r.size).toBe(64);
  expect(r.results.length).toBeGreaterThan(0);
  const chosen = r.results.find((x: any) => JSON.stringify(x.variant) === JSON.stringify(r.chosen));
  expect(chosen.correct).toBe(true);
  // the fastest of the correct ones
  expect(chosen.gflops).toBe(Math.max(...r.results.filter((x: any) => x.correct).map((x: any) => x.gflops)));
  const file = join(cache, "matmul-autotune.json");
  expect(existsSync(file)).toBe(true);
  expect(JSON.parse(readFileSync(file, "utf8"))[info.adapter.key]).toEqual(r.chosen);
}, 120_000); // compiles every candidate: 0.2-2.5 s each on lavapipe
