// The house rules, checked: imports run one way, down the floors below (a folder may use its own
// files and any folder on a lower floor, never one beside or above it); private files (`_name.ts`)
// are used only in their own folder; a command never reaches into another command; every op has
// its test file; lib never writes to stdout (commands own it). The floors are written down here and
// nowhere else; docs/layout.md shows the same picture.
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const root = join(import.meta.dir, "..");

/** Bottom to top. */
export const FLOORS: string[][] = [
  ["lib/base"], // errors, the logger, the seeded RNG, small pure helpers
  ["lib/gpu", "lib/io", "lib/plot", "lib/dist"], // the device; files, formats, the output policy; charts; MPI
  ["lib/tensor", "lib/tokenizer"], // tensors and the autograd tape; byte-level BPE
  ["lib/ops", "lib/data"], // kernels with their references and backward; readers, packing, shards
  ["lib/model", "lib/optim"], // the transformer and its checkpoints; AdamW, schedules, loss scaling
  ["lib/train"], // the loop, strategies, run directories
  ["cmd"], // one file per command, plus private plumbing (cmd/_*.ts)
];

function files(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(root, dir))) {
    const p = join(dir, name);
    if (statSync(join(root, p)).isDirectory()) out.push(...files(p));
    else if (p.endsWith(".ts")) out.push(p);
  }
  return out;
}

/** The folder (a FLOORS entry) a repository path belongs to. */
function folderOf(path: string): string | null {
  for (const floor of FLOORS) for (const f of floor) if (path === f || path.startsWith(`${f}/`)) return f;
  return null;
}

const floorOf = (folder: string) => FLOORS.findIndex((f) => f.includes(folder));

/**
 * Relative imports of a source file, resolved to repository paths. `runtime` leaves out `import
 * type` (erased when compiled, so it cannot make a circle at run time; it still counts for floors).
 */
export function importsOf(path: string, text = readFileSync(join(root, path), "utf8"), runtime = false): string[] {
  const out: string[] = [];
  const re =
    /(?:^|\n)\s*(?:import|export)\b([^"';]*?)from\s*["'](\.{1,2}\/[^"']+)["']|import\(\s*["'](\.{1,2}\/[^"']+)["']\s*\)|new URL\(\s*["'](\.{1,2}\/[^"']+)["']/g;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    if (runtime && m[1] !== undefined && /^\s*type\b/.test(m[1])) continue;
    out.push(relative(root, resolve(join(root, dirname(path)), m[2] ?? m[3] ?? m[4]!)));
  }
  return out;
}

/** Every way `path` breaks the import rules, one line each. */
export function violations(path: string, imports: string[]): string[] {
  const from = folderOf(path);
  if (!from) return [];
  const bad: string[] = [];
  for (const to of imports) {
    const target = folderOf(to);
    const name = to.split("/").pop()!;
    if (!target) {
      bad.push(`${path} imports ${to}, which is outside the floors`);
      continue;
    }
    if (name.startsWith("_") && dirname(to) !== dirname(path))
      bad.push(`${path} imports ${to}, a private file of ${dirname(to)}`);
    if (from === "cmd" && target === "cmd" && !name.startsWith("_"))
      bad.push(`${path} imports ${to}: a command never reaches into another command`);
    if (target === from) continue;
    const a = floorOf(from),
      b = floorOf(target);
    if (b > a) bad.push(`${path} imports ${to}: ${from} (floor ${a}) may not import ${target} (floor ${b}, above it)`);
    else if (b === a)
      bad.push(`${path} imports ${to}: ${from} and ${target} are on the same floor (${a}); move the shared part down`);
  }
  return bad;
}

const sources = [...files("lib"), ...files("cmd")];

describe("structure", () => {
  test("imports run down the floors, private files stay in their folder, commands stand alone", () => {
    const bad = sources.flatMap((p) => violations(p, importsOf(p)));
    expect(bad).toEqual([]);
  });

  test("the check catches a wrong import (an arrow up, one across, a private file, a command's neighbour)", () => {
    expect(violations("lib/tensor/tensor.ts", ["lib/ops/elementwise.ts"])).toEqual([
      "lib/tensor/tensor.ts imports lib/ops/elementwise.ts: lib/tensor (floor 2) may not import lib/ops (floor 3, above it)",
    ]);
    expect(violations("lib/data/shards.ts", ["lib/ops/matmul.ts"])).toEqual([
      "lib/data/shards.ts imports lib/ops/matmul.ts: lib/data and lib/ops are on the same floor (3); move the shared part down",
    ]);
    expect(violations("lib/train/trainer.ts", ["lib/ops/_matmul_variants.ts"])).toEqual([
      "lib/train/trainer.ts imports lib/ops/_matmul_variants.ts, a private file of lib/ops",
    ]);
    expect(violations("cmd/sft.ts", ["cmd/pretrain.ts", "cmd/_train.ts"])).toEqual([
      "cmd/sft.ts imports cmd/pretrain.ts: a command never reaches into another command",
    ]);
    expect(
      importsOf(
        "x/y.ts",
        'import { a } from "../lib/ops/rope.ts";\nexport { b } from "./z.ts";\nconst w = new URL("./w.ts", import.meta.url);',
      ),
    ).toEqual(["lib/ops/rope.ts", "x/z.ts", "x/w.ts"]);
  });

  test("no import circles between files (at run time)", () => {
    const graph = new Map(sources.map((p) => [p, importsOf(p, undefined, true)]));
    const state = new Map<string, 1 | 2>();
    const circles: string[] = [];
    const visit = (p: string, path: string[]) => {
      if (state.get(p) === 2) return;
      if (state.get(p) === 1) {
        circles.push([...path.slice(path.indexOf(p)), p].join(" -> "));
        return;
      }
      state.set(p, 1);
      for (const q of graph.get(p) ?? []) visit(q, [...path, p]);
      state.set(p, 2);
    };
    for (const p of sources) visit(p, []);
    expect(circles).toEqual([]);
  });

  test("every op has its test file: lib/ops/X.ts ↔ test/ops/X.test.ts", () => {
    const ops = readdirSync(join(root, "lib", "ops")).filter(
      (f) => f.endsWith(".ts") && f !== "index.ts" && !f.startsWith("_"),
    );
    const tests = new Set(readdirSync(join(root, "test", "ops")));
    expect(ops.filter((f) => !tests.has(f.replace(/\.ts$/, ".test.ts")))).toEqual([]);
  });

  test("lib never writes to stdout: commands own it", () => {
    const writes = files("lib").flatMap((p) =>
      readFileSync(join(root, p), "utf8")
        .split("\n")
        .flatMap((l, i) =>
          /console\.(log|info|table|dir)\(|process\.stdout\.write|Bun\.stdout/.test(l) && !/^\s*\/\//.test(l)
            ? [`${p}:${i + 1}: ${l.trim()}`]
            : [],
        ),
    );
    expect(writes).toEqual([]);
  });
});
