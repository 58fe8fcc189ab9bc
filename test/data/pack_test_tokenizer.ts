// A tokenizer with no merges: every id is a UTF-8 byte, so expected ids can be written by hand.
// Specials follow the 256 bytes: <|endoftext|> 256, <|pad|> 257, <|im_start|> 258, <|im_end|> 259.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { trainTokenizer } from "../../lib/tokenizer/train.ts";

export const EOS = 256,
  PAD = 257,
  IM_START = 258,
  IM_END = 259;

export async function byteTokenizer(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), "bunlm-bytetok-"));
  async function* one() {
    yield { text: "x", source: "inline", index: 1 };
  }
  await trainTokenizer(one(), dir, { vocabSize: 264 });
  return dir;
}

export const bytes = (s: string) => Array.from(new TextEncoder().encode(s));
