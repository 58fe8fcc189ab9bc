// The output policy every command follows: it never deletes or overwrites what it did not write.
// Before a command writes to its --out, checkOutDir classifies what is there:
//   nothing, or an empty directory     → write
//   an earlier output of this command  → replace only with --overwrite (only the files it recognizes
//                                        as its own; anything else stays)
//   anything else (other files, a regular file where a directory belongs) → refuse, naming it
// Nothing is written or removed here; the command decides when (after its inputs proved good).
import { existsSync, lstatSync, readdirSync, rmdirSync, statSync } from "node:fs";
import { InputError } from "../base/errors.ts";

export type OutState = "new" | "empty" | "earlier";

export interface OutPolicy {
  /** how the refusal names the output, e.g. "--out runs/seq" */
  flag: string;
  /** the command in messages, e.g. "pack" */
  command: string;
  /** is this non-empty directory an earlier output of the command? */
  isEarlier: (dir: string, entries: string[]) => boolean;
  overwrite: boolean;
}

function listSome(entries: string[]): string {
  const shown = entries.slice(0, 3).join(", ");
  return entries.length > 3 ? `${shown} and ${entries.length - 3} more` : shown;
}

/** A path that does not exist but is there as a link: pointing nowhere, or at itself. */
function brokenLink(path: string, flag: string): void {
  let link = false;
  try {
    link = lstatSync(path).isSymbolicLink();
  } catch {}
  if (link)
    throw new InputError(`${flag}: ${path} is a symbolic link to nothing that exists (or to itself); give a directory`);
}

export function checkOutDir(dir: string, p: OutPolicy): OutState {
  if (!existsSync(dir)) {
    brokenLink(dir, p.flag);
    return "new";
  }
  if (!statSync(dir).isDirectory())
    throw new InputError(`${p.flag}: ${dir} is a file, not a directory; give a new or empty directory`);
  const entries = readdirSync(dir);
  if (entries.length === 0) return "empty";
  if (!p.isEarlier(dir, entries))
    throw new InputError(
      `${p.flag}: ${dir} holds files that \`${p.command}\` did not write (${listSome(entries)}); give a new or empty directory`,
    );
  if (!p.overwrite)
    throw new InputError(`${p.flag}: ${dir} holds an earlier \`${p.command}\` output; add --overwrite to replace it`);
  return "earlier";
}

/** The same policy for a single output file (plot's picture). */
export function checkOutFile(
  file: string,
  p: Omit<OutPolicy, "isEarlier"> & { isEarlier: (file: string) => boolean },
): OutState {
  if (!existsSync(file)) {
    brokenLink(file, p.flag);
    return "new";
  }
  if (statSync(file).isDirectory()) throw new InputError(`${p.flag}: ${file} is a directory, not a file`);
  if (!p.isEarlier(file))
    throw new InputError(`${p.flag}: ${file} exists and was not written by \`${p.command}\`; give a new file name`);
  if (!p.overwrite)
    throw new InputError(`${p.flag}: ${file} holds an earlier \`${p.command}\` output; add --overwrite to replace it`);
  return "earlier";
}

/** Remove `dir` if it is empty (a directory a failed command created and left nothing in). */
export function removeIfEmpty(dir: string): void {
  try {
    if (readdirSync(dir).length === 0) rmdirSync(dir);
  } catch {}
}
