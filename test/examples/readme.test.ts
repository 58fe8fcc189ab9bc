// The README cannot drift from the code: docs/config.md is what the schemas generate,
// and every command in its ```sh blocks runs here, in order, in a scratch directory, and must exit 0.
// When a ```json block follows, every line shown must have a line in the real output with the same
// keys (and the same "event"), so the documented output has the shape the command prints; values
// (timings, losses) are the README's one real run.
// Not run here: `bash setup.sh ...` (the two quick-start commands are what CI itself runs),
// `make -C examples` (the 10-minute demo; its dependency graph has its own test), and `bun bench/...`
// (minutes of measurement and a PyTorch install; benchmarks are measured, not tested).
import { describe, expect, test } from "bun:test";
import { mkdirSync, readFileSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { CONFIG_DOC, reference } from "../../scripts/config_reference.ts";
import { root, tmp } from "../train/helpers.ts";

const readme = readFileSync(join(root, "README.md"), "utf8");

interface Block {
  lang: string;
  body: string;
}

function blocks(md: string): Block[] {
  const out: Block[] = [];
  const re = /```(\w*)\n([\s\S]*?)```/g;
  for (let m = re.exec(md); m; m = re.exec(md)) out.push({ lang: m[1]!, body: m[2]! });
  return out;
}

const SKIP = [/^bash setup\.sh/, /^make /, /^bun bench\//];

test("docs/config.md is what the schemas generate (bun scripts/config_reference.ts --write)", () => {
  expect(readFileSync(CONFIG_DOC, "utf8")).toBe(reference());
});

describe("README commands", () => {
  const all = blocks(readme);
  const sandbox = tmp("readme");
  for (const f of [
    "cmd",
    "lib",
    "kernels",
    "examples",
    "test",
    "node_modules",
    "package.json",
    "scripts",
    "bench",
    "tsconfig.json",
    "bunfig.toml",
  ])
    symlinkSync(join(root, f), join(sandbox, f));
  // `bun` on the PATH is this test's own runtime (npm's package names its binary bun.exe)
  mkdirSync(join(sandbox, ".bin"));
  symlinkSync(process.execPath, join(sandbox, ".bin", "bun"));
  const env = { ...process.env, PATH: `${join(sandbox, ".bin")}:${process.env.PATH}` };
  let n = 0;
  all.forEach((b, i) => {
    if (b.lang !== "sh") return;
    const lines = b.body
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith("#"));
    const runnable = lines.filter((l) => !SKIP.some((r) => r.test(l)));
    if (!runnable.length) return;
    const shown =
      all[i + 1]?.lang === "json"
        ? all[i + 1]!.body.trim()
            .split("\n")
            .map((l) => JSON.parse(l))
        : null;
    test(`block ${++n}: ${runnable[0]!.slice(0, 70)}`, () => {
      let out = "";
      for (const cmd of runnable) {
        const p = Bun.spawnSync(["bash", "-c", cmd], { cwd: sandbox, env });
        if (p.exitCode !== 0)
          throw new Error(`\`${cmd}\` exited ${p.exitCode}: ${p.stderr.toString().trim().split("\n").pop()}`);
        out += p.stdout.toString();
      }
      if (!shown) return;
      const got = out
        .trim()
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l));
      const keys = (o: any) => Object.keys(o).sort().join(",");
      for (const s of shown) {
        const twin = got.find((g) => keys(g) === keys(s) && g.event === s.event);
        if (!twin)
          throw new Error(
            `README shows ${JSON.stringify(s).slice(0, 120)}…; no output line has its keys. Output:\n${out.slice(0, 800)}`,
          );
      }
    }, 600_000);
  });
  mkdirSync(join(sandbox, "runs"), { recursive: true });
});
