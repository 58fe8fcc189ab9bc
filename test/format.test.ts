// The tree is formatted and linted as biome.json says (Biome: print width 120, the recommended rules
// less the few this codebase's style overrides). `bun run format` fixes the formatting.
import { expect, test } from "bun:test";
import { join } from "node:path";

const root = join(import.meta.dir, "..");

test("biome check: formatting and lint rules hold for every file", () => {
  const p = Bun.spawnSync([join(root, "node_modules", ".bin", "biome"), "check", "--max-diagnostics=5", "."], {
    cwd: root,
    env: { ...process.env, NO_COLOR: "1" },
  });
  const out = p.stdout.toString() + p.stderr.toString();
  if (p.exitCode !== 0) throw new Error(`biome check failed (bun run format fixes formatting):\n${out.slice(0, 3000)}`);
  expect(p.exitCode).toBe(0);
}, 60_000);
