// pack's output directory under the output policy (lib/io/out_dir.ts): it is built beside --out
// (OUT.bunlm-tmp-PID) and moved in when complete. What may be at --out: nothing, an empty directory,
// or (with --overwrite) an earlier pack output, manifest.json and exactly the files it lists. Any
// other file there (a tokenizer, a user's notes, a regular file in place of the directory) is
// refused before anything is read, and checked again just before the move.
// --out may be a symbolic link (to a bigger disk): the directory it points to is the output, and the
// link stays. An existing directory (empty, or a mount point) receives the new files one by one; an
// earlier output is swapped with a rename, so it goes only once the new one is whole. A pack killed
// in the middle of that swap leaves OUT.bunlm-old-PID (the previous dataset) and no OUT: the next pack
// puts it back rather than treat it as rubbish.
import { existsSync, readdirSync, readFileSync, realpathSync, renameSync, rmdirSync, rmSync, lstatSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { InputError } from "../base/errors.ts";
import { checkOutDir, type OutPolicy, type OutState } from "../io/out_dir.ts";
import { log } from "../base/log.ts";
import { alive, asideDir, tempPid } from "../io/stale.ts";

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

// what pack writes into the directory it builds (row_store.ts), temporary names included
const PACK_WORK = /^(rows\.bin|side\.jsonl|manifest\.json|(train|val)-\d{5}\.(safetensors|jsonl))(\.bunlm-\d+\.tmp)?$/;

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
        throw new InputError(
          `--out: ${dir} holds an earlier \`pack\` output and files that \`pack\` did not write (${other.slice(0, 3).join(", ")}); move them out first`,
        );
      return true;
    },
  };
}

/**
 * The directory pack writes for `--out`: absolute (so "." and "dir/" name it, not a sibling), and
 * through a symbolic link to where it points. A link to nothing is refused.
 */
export function packOutDir(out: string): string {
  const abs = resolve(out);
  let st: ReturnType<typeof lstatSync>;
  try {
    st = lstatSync(abs);
  } catch {
    return abs;
  }
  if (!st.isSymbolicLink()) return abs;
  try {
    return realpathSync(abs);
  } catch (e: any) {
    throw new InputError(
      `--out: ${out} is a symbolic link to ${e.code === "ELOOP" ? "itself (a loop)" : "nothing that exists"}; give a directory`,
    );
  }
}

/**
 * Before packing into `out` (from packOutDir): put back a previous dataset that a killed pack had
 * moved aside, remove the half-built directories of killed packs, then check `out` against the policy.
 */
export function preparePackOut(out: string, policy: OutPolicy): void {
  const parent = dirname(out),
    base = basename(out);
  let names: string[] = [];
  try {
    names = readdirSync(parent);
  } catch {}
  for (const name of names) {
    if (!name.startsWith(`${base}.bunlm-`)) continue;
    const pid = tempPid(name);
    if (pid === null || alive(pid)) continue;
    const path = join(parent, name);
    if (!lstatSync(path).isDirectory()) continue;
    if (name === asideName(base, pid)) {
      const ours = packFiles(path);
      if (!ours || !readdirSync(path).every((e) => ours.has(e))) continue; // not a dataset pack moved aside
      if (existsSync(out)) rmSync(path, { recursive: true, force: true });
      else {
        renameSync(path, out);
        log.info(`note: ${out}: put back the dataset that a killed pack (process ${pid}) had moved to ${path}`);
      }
    } else if (readdirSync(path).every((e) => PACK_WORK.test(e))) {
      rmSync(path, { recursive: true, force: true });
      log.info(`note: removed ${path}, left by a pack (process ${pid}) that was killed`);
    }
  }
  checkOutDir(out, policy);
}

const asideName = (base: string, pid: number) => `${base}.bunlm-old-${pid}`;

/** Move the finished directory `tmp` into `out`; an earlier output there goes only once the new one is complete. */
export function swapIn(tmp: string, out: string, policy: OutPolicy): void {
  const state: OutState = checkOutDir(out, policy); // it may have changed while we packed
  if (state === "new") renameSync(tmp, out);
  // an empty directory (perhaps a mount point, or the current one) stays itself
  else if (state === "empty") moveFiles(tmp, out);
  else {
    const old = asideDir(out);
    try {
      renameSync(out, old);
    } catch {
      // a mount point cannot be renamed: replace its files instead
      for (const f of packFiles(out) ?? []) rmSync(join(out, f), { force: true });
      moveFiles(tmp, out);
      return;
    }
    renameSync(tmp, out);
    rmSync(old, { recursive: true, force: true });
  }
}

function moveFiles(from: string, to: string): void {
  // the manifest last: until it is there, the directory is not a dataset
  const files = readdirSync(from).sort((a, b) => Number(a === "manifest.json") - Number(b === "manifest.json"));
  for (const f of files) renameSync(join(from, f), join(to, f));
  rmdirSync(from);
}
