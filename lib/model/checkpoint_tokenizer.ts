// The tokenizer a checkpoint generates with: --tokenizer DIR, or the copy the checkpoint carries. A
// checkpoint that records its tokenizer (a tokenizer.json copy, a training meta.json's hash) only
// generates with that one: ids of another vocabulary decode to fluent-looking garbage. A tokenizer
// larger than the model's vocabulary cannot belong to it either.
import { existsSync, readFileSync, realpathSync } from "node:fs";
import { join } from "node:path";
import { InputError } from "../base/errors.ts";
import { Tokenizer } from "../tokenizer/tokenizer.ts";

export interface CheckpointTokenizer {
  tok: Tokenizer;
  dir: string;
  /** named with --tokenizer (not the checkpoint's own directory) */
  given: boolean;
}

function _sameDir(a: string, b: string): boolean {
  try {
    return realpathSync(a) === realpathSync(b);
  } catch {
    return false;
  }
}

/** meta.json's data.tokenizer_hash, when the checkpoint is a training checkpoint that has one. */
function _trainedHash(ckpt: string): { hash: string; data: string } | null {
  const file = join(ckpt, "meta.json");
  if (!existsSync(file)) return null;
  try {
    const d = JSON.parse(readFileSync(file, "utf8"))?.data;
    return typeof d?.tokenizer_hash === "string" && d.tokenizer_hash
      ? { hash: d.tokenizer_hash, data: String(d.dir ?? "") }
      : null;
  } catch {
    // meta.json only serves this check; a checkpoint whose meta.json is damaged still generates
    return null;
  }
}

/**
 * Refuse a tokenizer other than the one the checkpoint records: its own tokenizer.json copy and the
 * hash its training run wrote into meta.json (the training commands compare the same hash).
 */
function _check(ckpt: string, t: CheckpointTokenizer): void {
  const { tok, dir, given } = t;
  const own = existsSync(join(ckpt, "tokenizer.json"));
  if (given && own) {
    const ownHash = Tokenizer.fromDir(ckpt).hash;
    if (ownHash !== tok.hash)
      throw new InputError(
        `--tokenizer ${dir}: is not the tokenizer of ${ckpt} (hash ${tok.hash}, ${join(ckpt, "tokenizer.json")} has ${ownHash}); leave --tokenizer out to use the checkpoint's own`,
      );
  }
  const trained = _trainedHash(ckpt);
  if (!trained || trained.hash === tok.hash) return;
  const meta = join(ckpt, "meta.json");
  if (!given)
    throw new InputError(
      `${join(ckpt, "tokenizer.json")}: is not the tokenizer ${ckpt} was trained with (hash ${tok.hash}, ${meta} says ${trained.hash}); give that one with --tokenizer DIR`,
    );
  const fix = own
    ? "leave --tokenizer out to use the checkpoint's own"
    : `give the tokenizer ${trained.data || "its training data"} was packed with`;
  throw new InputError(
    `--tokenizer ${dir}: is not the tokenizer ${ckpt} was trained with (hash ${tok.hash}, ${meta} says ${trained.hash}); ${fix}`,
  );
}

/** --tokenizer DIR (`flag`) or the checkpoint's own tokenizer, checked against what it records; null when there is neither. */
export function checkpointTokenizer(ckpt: string, flag?: string): CheckpointTokenizer | null {
  const dir = flag ?? (existsSync(join(ckpt, "tokenizer.json")) ? ckpt : undefined);
  if (dir === undefined) return null;
  const t = { tok: Tokenizer.fromDir(dir), dir, given: flag !== undefined && !_sameDir(flag, ckpt) };
  _check(ckpt, t);
  return t;
}

/** Refuse a tokenizer with more tokens than the model has rows. */
export function checkTokenizerFits(t: CheckpointTokenizer, ckpt: string, vocabSize: number): void {
  if (t.tok.size > vocabSize)
    throw new InputError(
      `${t.given ? `--tokenizer ${t.dir}` : join(t.dir, "tokenizer.json")}: has ${t.tok.size} tokens, the model in ${ckpt} only ${vocabSize}: they do not belong together; give the tokenizer the model was trained with`,
    );
}
