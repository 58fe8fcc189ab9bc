// Training a tokenizer from documents: pre-token counts over the corpus, BPE merges, and the Hugging
// Face files written atomically into the output directory.
import { mkdirSync, renameSync, writeFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { normalize, splitPieces, SpecialSplitter } from "./pretokenize.ts";
import { trainBpe } from "./bpe_train.ts";
import { buildTokenizerJson, buildTokenizerConfig, specialTokens } from "./hf_json.ts";
import type { Doc } from "../io/readers.ts";
import { InputError } from "../base/errors.ts";
import { tempFile } from "../io/stale.ts";

export interface TrainOpts {
  vocabSize: number;
  specials?: string[];
  minFrequency?: number;
  onMerges?: (done: number, total: number) => void;
}

export interface TrainSummary {
  documents: number;
  bytes: number;
  tokens: number;
  merges: number;
  vocab_size: number;
  bytes_per_token: number;
}

export function minVocab(specials: string[]): number {
  return 256 + specialTokens(specials).length;
}

export async function trainTokenizer(docs: AsyncIterable<Doc>, outDir: string, opts: TrainOpts): Promise<TrainSummary> {
  const specials = specialTokens(opts.specials ?? []);
  const floor = 256 + specials.length;
  if (!Number.isInteger(opts.vocabSize) || opts.vocabSize < floor)
    throw new InputError(
      `--vocab-size ${opts.vocabSize} is too small: the 256 byte tokens and ${specials.length} special tokens need at least ${floor}`,
    );
  const splitter = new SpecialSplitter(new Map(specials.map((s, i) => [s, i])));
  const counts = new Map<string, number>();
  let documents = 0,
    bytes = 0;
  const pieces: string[] = [];
  for await (const d of docs) {
    documents++;
    bytes += Buffer.byteLength(d.text);
    for (const [seg, sid] of splitter.split(d.text)) {
      if (sid >= 0) continue;
      pieces.length = 0;
      for (const p of splitPieces(normalize(seg), pieces)) counts.set(p, (counts.get(p) ?? 0) + 1);
    }
  }
  if (bytes === 0) throw new InputError(`the inputs hold no text (${documents} empty documents)`);
  const enc = new TextEncoder();
  const words: Uint8Array[] = [],
    freq: number[] = [];
  for (const [p, c] of counts) {
    words.push(enc.encode(p));
    freq.push(c);
  }
  counts.clear();
  const numMerges = opts.vocabSize - floor;
  const r = trainBpe(words, freq, numMerges, opts.minFrequency ?? 2, (done) => opts.onMerges?.(done, numMerges));
  const json = buildTokenizerJson(r, specials);
  const config = buildTokenizerConfig(r.tokens.length, specials);
  writeDirAtomically(outDir, {
    "tokenizer.json": JSON.stringify(json, null, 1) + "\n",
    "tokenizer_config.json": JSON.stringify(config, null, 2) + "\n",
  });
  return {
    documents,
    bytes,
    tokens: r.corpusTokens,
    merges: r.merges.length,
    vocab_size: r.tokens.length + specials.length,
    bytes_per_token: +(bytes / Math.max(1, r.corpusTokens)).toFixed(3),
  };
}

/**
 * Write files into dir so that a reader never sees a half-written file: all to temporary names
 * first, then renamed. A failed write (a full disk) removes every temporary file, the one it was
 * writing included.
 */
export function writeDirAtomically(dir: string, files: Record<string, string>): void {
  mkdirSync(dir, { recursive: true });
  const tmps: [string, string][] = [];
  try {
    for (const [name, text] of Object.entries(files)) {
      const tmp = tempFile(join(dir, `.${name}`));
      tmps.push([tmp, join(dir, name)]);
      writeFileSync(tmp, text);
    }
    for (const [tmp, final] of tmps) renameSync(tmp, final);
  } catch (e: any) {
    for (const [tmp] of tmps) rmSync(tmp, { force: true });
    if (e?.code === "ENOSPC") throw new InputError(`${dir}: no space left on the device; nothing was written`);
    throw e;
  }
}

/** The files `tokenize train` writes; a directory holding only these is an earlier output of it. */
export const TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json"];
