// pack's output directory under the output policy (lib/io/out_dir.ts): it is built beside --out as
// OUT.tmp-PID and swapped in whole when complete. What may be at --out: nothing, an empty directory,
// or (with --overwrite) an earlier pack output — manifest.json and exactly the files it lists. Any
// other file there (a tokenizer, a user's notes, a regular file in place of the directory) is
// refused before anything is read, and checked again just before the swap.
// A pack killed mid-swap leaves OUT.old-PID (the previous dataset) and no OUT: the next pack puts it
// back rather than treat it as rubbish.
import { existsSync, readdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { InputError } from "../io/errors.ts";
import { checkOutDir, type OutPolicy } from "../io/out_dir.ts";
import { alive, tempPid } from "../io/stale.ts";

/** The files an earlier pack wrote into dir, or null when dir holds no pack manifest. */
function packFiles(dir: string): Set<string> | null {
  try {
    const m = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8"));
    if (m?.format !== "bunlm-shards" || !Array.isArray(m.shards)) return null;
    const files = new Set<string>(["manifest.json"]);
    for (const s of m.shards) {
      if (typeof s?.file === "string") files.add(s.file);
      if (typeof s?.side === "string") files.add(s.side);
    }
    return files;
  } catch {
    return null;
  }
}

export function packOutPolicy(overwrite: boolean): OutPolicy {
  return {
    flag: "--out",
    command: "pack",
    overwrite,
    isEarlier: (dir, entries) => {
      const ours = packFiles(dir);
      if (!ours) return false;
      const other = entries.filter((e) => !ours.has(e));
      if (other.length)
        throw new InputError(`--out: ${dir} holds an earlier \`pack\` output and files that \`pack\` did not write (${other.slice(0, 3).join(", ")}); move them out first`);
      return true;
    },
  };
}

function trimmed(out: string): string {
  return out.replace(/\/+$/, "") || out;
}

/**
 * Before packing into `out`: put back a previous dataset that a killed pack had moved aside, remove
 * other leftovers of dead packs, then check `out` against the policy.
 */
export function preparePackOut(out: string, policy: OutPolicy, note: (line: string) => void): void {
  const o = trimmed(out);
  const parent = dirname(o), base = basename(o);
  let names: string[] = [];
  try {
    names = readdirSync(parent);
  } catch {}
  for (const name of names) {
    if (!name.startsWith(`${base}.tmp-`) && !name.startsWith(`${base}.old-`)) continue;
    const pid = tempPid(name);
    if (pid === null || alive(pid)) continue;
    const path = join(parent, name);
    if (name.startsWith(`${base}.old-`) && !existsSync(o)) {
      renameSync(path, o);
      note(`bunlm: note: ${o}: put back the dataset that a killed pack (process ${pid}) had moved to ${path}`);
    } else {
      rmSync(path, { recursive: true, force: true });
      note(`bunlm: note: removed ${path}, left by a pack (process ${pid}) that was killed`);
    }
  }
  checkOutDir(o, policy);
}

/** Swap the finished directory `tmp` into `out`; an earlier output there goes only once the new one is in place. */
export function swapIn(tmp: string, out: string, policy: OutPolicy): void {
  const o = trimmed(out);
  const state = checkOutDir(o, policy); // it may have changed while we packed
  if (state === "empty") rmSync(o, { recursive: true }); // an empty directory: nothing of the user's is lost
  const old = `${o}.old-${process.pid}`;
  if (state === "earlier") renameSync(o, old);
  renameSync(tmp, o);
  if (state === "earlier") rmSync(old, { recursive: true, force: true });
}
