// GPT-2's byte-to-unicode table: byte-level BPE stores tokens as strings of printable characters, one
// per byte, so that vocab and merges survive JSON. Printable Latin-1 bytes map to themselves; the rest
// (controls, space, 0x7F-0xA0, 0xAD) map to U+0100 upwards, in byte order. Hugging Face's ByteLevel
// pre-tokenizer and decoder use the same table, which is what makes our tokenizer.json load there.

function build(): { toChar: string[]; toByte: Map<string, number> } {
  const keep: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) keep.push(b);
  for (let b = 0xa1; b <= 0xac; b++) keep.push(b);
  for (let b = 0xae; b <= 0xff; b++) keep.push(b);
  const kept = new Set(keep);
  const toChar: string[] = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) toChar[b] = String.fromCharCode(kept.has(b) ? b : 256 + extra++);
  const toByte = new Map<string, number>();
  toChar.forEach((c, b) => toByte.set(c, b));
  return { toChar, toByte };
}

const table = build();

/** byte (0-255) → its one-character token string */
export const BYTE_TO_CHAR: readonly string[] = table.toChar;
/** one-character token string → byte */
export const CHAR_TO_BYTE: ReadonlyMap<string, number> = table.toByte;

export function bytesToTokenString(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += BYTE_TO_CHAR[b];
  return s;
}
