// The README cannot drift from the code: docs/config.md is what the schemas generate,
// and every command in its ```sh blocks runs here, in order, in a scratch directory, and must exit 0.
// When a ```json block follows, every line shown must have a line in the real output with the same
// keys (and the same "event"), so the documented output has the shape the command prints; values
// (timings, losses) are the README's one real run.
// Not run here: `bash setup.sh ...` (the two quick-start commands are what CI itself runs),
// `make -C examples` (the 10-minute demo; its dependency graph has its own test), and `bun bench/...`
// (minutes of measurement and a PyTorch install; benchmarks are measured, not tested).
// The documentation's links cannot rot either: every relative link in README.md and docs/*.md names a
// file inside the repository, and a #fragment names a heading of that file.
import { describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
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

test("the README stays a front page: at most 300 lines (the reference lives in docs/)", () => {
  expect(readme.trimEnd().split("\n").length).toBeLessThanOrEqual(300);
});

/** GitHub's anchor for a heading: lower case, punctuation dropped, each space a hyphen. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .replace(/\s/g, "-");
}

/** The markdown without code: fenced blocks and `inline code` hold text that looks like links and headings. */
function prose(md: string): string {
  return md.replace(/```[\s\S]*?```/g, "").replace(/`[^`\n]*`/g, "");
}

/** Every way a file's relative links fail: a target outside the repository, a missing file, a missing heading. */
function brokenLinks(file: string, md: string, repo: string): string[] {
  const bad: string[] = [];
  for (const m of prose(md).matchAll(/\]\(([^)\s]+)\)/g)) {
    const link = m[1]!;
    if (/^[a-z][a-z+.-]*:/i.test(link)) continue; // http:, https:, mailto:
    const [path = "", fragment] = link.split("#");
    const target = path ? resolve(dirname(file), path) : file;
    const where = `${relative(repo, file)}: (${link})`;
    if (path && relative(repo, target).startsWith("..")) bad.push(`${where} points outside the repository`);
    else if (path && !existsSync(target)) bad.push(`${where}: no such file`);
    else if (fragment && target.endsWith(".md")) {
      const text = path ? readFileSync(target, "utf8") : md;
      const headings = [...prose(text).matchAll(/^#{1,6}\s+(.+)$/gm)].map((h) => slug(h[1]!));
      if (!headings.includes(fragment)) bad.push(`${where}: ${relative(repo, target)} has no heading #${fragment}`);
    }
  }
  return bad;
}

describe("documentation links", () => {
  const docs = readdirSync(join(root, "docs"))
    .filter((f) => f.endsWith(".md"))
    .map((f) => join(root, "docs", f));
  for (const file of [join(root, "README.md"), ...docs])
    test(`${relative(root, file)}: every relative link resolves inside the repository`, () => {
      expect(brokenLinks(file, readFileSync(file, "utf8"), root)).toEqual([]);
    });

  test("the check catches a missing file, a link out of the repository and a missing heading", () => {
    const file = join(root, "docs", "x.md");
    const md = [
      "[ok](config.md) [web](https://example.org/a.md) [self](#a-heading)",
      "[gone](nothing-here.md) [out](../../shared/DESIGN.md) [anchor](training.md#no-such-heading)",
      "`[code](not-a-link.md)`",
      "## A heading",
    ].join("\n");
    expect(brokenLinks(file, md, root)).toEqual([
      "docs/x.md: (nothing-here.md): no such file",
      "docs/x.md: (../../shared/DESIGN.md) points outside the repository",
      "docs/x.md: (training.md#no-such-heading): docs/training.md has no heading #no-such-heading",
    ]);
  });
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
        if (p.exitCode !== 0) {
          // bunlm's one-line error, or the runtime's own (a crash ends with Bun's version banner)
          const err = p.stderr.toString().trim().split("\n");
          const line = err.find((l) => /^(bunlm: |error: )/.test(l)) ?? err.pop();
          throw new Error(`\`${cmd}\` exited ${p.exitCode}: ${line}`);
        }
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
