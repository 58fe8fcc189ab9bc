// Showing generated text while it is sampled. Ids decode to bytes one token at a time and a streaming
// UTF-8 decoder holds back a character split across tokens until its last byte arrives (decoding all
// ids so far at each step would show U+FFFD and then take it back, which a terminal cannot undo).
// On a terminal, control characters are shown escaped: a model that samples ESC [ 2 J would
// otherwise clear the user's screen, and a bare CR overwrite what was printed.
import type { Tokenizer } from "./tokenizer.ts";

/**
 * `text` safe to print on a terminal: C0 controls other than newline and tab, DEL and the C1 controls
 * become `\xNN` (ESC → "\x1b"); everything else is unchanged.
 */
export function visible(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
  return text.replace(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/g, (ch) => `\\x${ch.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

/** Text of a token stream, as it becomes complete; special tokens (the stop token) are left out. */
export class TextStream {
  private dec = new TextDecoder("utf-8", { fatal: false });
  // until the first shown token: decoders that drop the text's leading space (Llama 2's) do it there only
  private first = true;

  constructor(private tok: Tokenizer) {}

  /** The text token `id` completes ("" while a character is still split). */
  push(id: number): string {
    const bytes = this.tok.decodeBytes([id], true, this.first);
    // a skipped special token does not start the text; any other does, even one that shows nothing
    if (!this.tok.isSpecial(id)) this.first = false;
    return this.dec.decode(bytes, { stream: true });
  }

  /** What is left at the end (U+FFFD for a character the stream cut off). */
  end(): string {
    return this.dec.decode();
  }
}
