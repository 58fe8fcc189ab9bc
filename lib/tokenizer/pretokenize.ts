// Pre-tokenization: NFC, then a GPT-4-style split (contractions, letter runs with one leading
// non-letter, digit groups of at most 3, punctuation runs, newlines, spaces) with one change: CJK
// script runs (Han, Hiragana, Katakana, Hangul) are kept apart from other letters, so "abc中文" is two
// pieces and Chinese text is never glued to Latin words.
//
// The same pattern goes into tokenizer.json for Hugging Face's Oniguruma engine and is run here by
// JavaScript's engine, so it uses only syntax both read alike: no inline (?i), no class subtraction
// ("letters but not CJK" is [^\P{L}CJK]). One difference needs care: Oniguruma's \s is Unicode
// White_Space (it includes U+0085, not U+FEFF); JavaScript's \s is the reverse. The JS side gets an
// explicit class with Oniguruma's members.

const CJK = "\\p{Han}\\p{Hiragana}\\p{Katakana}\\p{Hangul}";

/** The split pattern as Hugging Face's tokenizer.json stores it (Oniguruma syntax). */
export const SPLIT_PATTERN = [
  "'(?:[sdmtSDMT]|[lL][lL]|[vV][eE]|[rR][eE])",
  `[^\\r\\n\\p{L}\\p{N}]?[^\\P{L}${CJK}]+`,
  `[${CJK}]+`,
  "\\p{N}{1,3}",
  " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*",
  "\\s*[\\r\\n]+",
  "\\s+(?!\\S)",
  "\\s+",
].join("|");

// Unicode White_Space, as Oniguruma's \s matches it
const WS = "\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";

function toJs(pattern: string): RegExp {
  const src = pattern
    .replace(/\[\^\\s/g, `[^${WS}`)
    .replace(/\\S/g, `[^${WS}]`)
    .replace(/\\s/g, `[${WS}]`)
    // Oniguruma names scripts bare (\p{Han}); JavaScript wants \p{Script=Han}
    .replace(/\\p\{(Han|Hiragana|Katakana|Hangul)\}/g, "\\p{Script=$1}");
  return new RegExp(src, "gu");
}

const SPLIT = toJs(SPLIT_PATTERN);

/** Split normalized text into pre-tokens (every character lands in exactly one piece). */
export function splitPieces(text: string, out: string[] = []): string[] {
  SPLIT.lastIndex = 0;
  let last = 0;
  for (let m = SPLIT.exec(text); m !== null; m = SPLIT.exec(text)) {
    if (m.index > last) out.push(text.slice(last, m.index)); // unmatched gap: its own piece, as HF's Isolated split does
    out.push(m[0]);
    last = m.index + m[0].length;
    if (m[0].length === 0) SPLIT.lastIndex++;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

export function normalize(text: string): string {
  return text.normalize("NFC");
}

/**
 * Split raw text on special tokens first (they are matched before normalization, as HF does for
 * added tokens with normalized=false); yields [text, specialId | -1] segments.
 */
export class SpecialSplitter {
  private re: RegExp | null;
  constructor(private specials: Map<string, number>) {
    const alts = [...specials.keys()]
      .sort((a, b) => b.length - a.length)
      .map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
    this.re = alts.length ? new RegExp(alts.join("|"), "g") : null;
  }

  split(text: string): [string, number][] {
    if (!this.re) return [[text, -1]];
    const out: [string, number][] = [];
    this.re.lastIndex = 0;
    let last = 0;
    for (let m = this.re.exec(text); m !== null; m = this.re.exec(text)) {
      if (m.index > last) out.push([text.slice(last, m.index), -1]);
      out.push([m[0], this.specials.get(m[0])!]);
      last = m.index + m[0].length;
    }
    if (last < text.length) out.push([text.slice(last), -1]);
    return out;
  }
}
