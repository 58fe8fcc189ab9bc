// Encoding and decoding with a Hugging Face tokenizer.json that `tokenize train` did not write
// (hf_pipeline.ts reads its settings). The order is the Rust library's (tokenizer/mod.rs,
// added_vocabulary.rs): added tokens matched in the raw text (those with normalized=false), the rest
// normalized, added tokens with normalized=true matched in that, pre-tokenized, and each piece run
// through BPE: byte-level files start from the piece's UTF-8 bytes, the others from its characters,
// a character missing from the vocabulary becoming its <0xNN> byte tokens (byte_fallback) or the
// unknown token. With ignore_merges (Llama 3) a piece that is itself a token is that token.
// Decoding maps ids to token strings (added tokens included, special ones skipped on request) and
// runs the file's decoders over the list. Post-processors (a BOS the file's TemplateProcessing would
// add) are not applied: callers encode pieces of text, and chat templates write their own BOS.
import { InputError } from "../base/errors.ts";
import { BYTE_TO_CHAR, CHAR_TO_BYTE } from "./bytes.ts";
import { fallbackByte, type ForeignAdded, type ForeignPipeline, foreignPipeline } from "./hf_pipeline.ts";
import { WS } from "./hf_regex.ts";

type Obj = Record<string, unknown>;

/** A token no decoder changes: U+0001, which no tokenizer's Replace or Strip names. */
const STOP = "\u0001";
const LEFT_WS = new RegExp(`[${WS}]+$`, "u");
const RIGHT_WS = new RegExp(`^[${WS}]+`, "u");

/**
 * Splits text on a set of added tokens, leftmost-longest (Rust uses Aho-Corasick with that rule).
 * Gemma has 6,415 added tokens: one regex alternation of them all is slow, so a class of their first
 * characters finds the candidate positions and the tokens starting with that character (longest
 * first) are tried there.
 */
class AddedSplitter {
  private first: RegExp | null = null;
  private byFirst = new Map<string, [string, ForeignAdded][]>();

  constructor(tokens: ForeignAdded[], contentOf: (a: ForeignAdded) => string) {
    for (const a of tokens) {
      const c = contentOf(a);
      if (!c.length) continue;
      const f = String.fromCodePoint(c.codePointAt(0)!);
      let list = this.byFirst.get(f);
      if (!list) this.byFirst.set(f, (list = []));
      list.push([c, a]);
    }
    for (const list of this.byFirst.values()) list.sort((x, y) => y[0].length - x[0].length);
    // members written as \u{...} escapes, so "-", "^" or "]" cannot change the class
    const members = [...this.byFirst.keys()].map((c) => `\\u{${c.codePointAt(0)!.toString(16)}}`);
    if (members.length) this.first = new RegExp(`[${members.join("")}]`, "gu");
  }

  private matchAt(text: string, i: number): [string, ForeignAdded] | null {
    for (const cand of this.byFirst.get(String.fromCodePoint(text.codePointAt(i)!))!)
      if (text.startsWith(cand[0], i)) return cand;
    return null;
  }

  /** Segments of `text` as [text, -1, offset] or [matched text, token id, offset]; lstrip/rstrip take the spaces beside a match. */
  split(text: string, out: [string, number, number][], offset: number): void {
    const re = this.first;
    if (!re) {
      if (text.length) out.push([text, -1, offset]);
      return;
    }
    re.lastIndex = 0;
    let last = 0;
    for (let m = re.exec(text); m !== null; m = re.exec(text)) {
      const hit = this.matchAt(text, m.index);
      if (!hit) continue;
      const a = hit[1];
      let start = m.index,
        stop = m.index + hit[0].length;
      if (a.lstrip) start = Math.max(last, start - (text.slice(0, start).match(LEFT_WS)?.[0].length ?? 0));
      if (a.rstrip) stop += text.slice(stop).match(RIGHT_WS)?.[0].length ?? 0;
      re.lastIndex = stop;
      if (start > last) out.push([text.slice(last, start), -1, offset + last]);
      out.push([text.slice(start, stop), a.id, offset + start]);
      last = stop;
    }
    if (last < text.length) out.push([text.slice(last), -1, offset + last]);
  }
}

export class ForeignEncoder {
  private raw: AddedSplitter;
  private normalized: AddedSplitter;
  private unk: number | null;
  private cache = new Map<string, number[]>();
  private enc = new TextEncoder();
  private fallback = new Int32Array(256).fill(-1);

  constructor(
    readonly p: ForeignPipeline,
    private ids: Map<string, number>,
    private vocab: string[],
    private special: Set<number>,
    private merge: (syms: number[]) => void,
    private byteIds: Int32Array,
  ) {
    this.raw = new AddedSplitter(
      p.added.filter((a) => !a.normalized),
      (a) => a.content,
    );
    const norm = p.normalize;
    this.normalized = new AddedSplitter(
      p.added.filter((a) => a.normalized),
      (a) => (norm ? norm(a.content) : a.content),
    );
    this.unk = p.unkToken === null ? null : (ids.get(p.unkToken) ?? null);
    for (let b = 0; b < 256; b++)
      this.fallback[b] = ids.get(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`) ?? -1;
  }

  /** Text → ids, added tokens included (Rust's encode with add_special_tokens=false). */
  encode(text: string, out: number[]): number[] {
    const segs: [string, number, number][] = [];
    this.raw.split(text, segs, 0);
    for (const [seg, id, at] of segs) {
      if (id >= 0) {
        out.push(id);
        continue;
      }
      const n = this.p.normalize ? this.p.normalize(seg) : seg;
      const inner: [string, number, number][] = [];
      this.normalized.split(n, inner, at);
      for (const [s, id2, at2] of inner) {
        if (id2 >= 0) out.push(id2);
        else for (const piece of this.p.preTokenize([s], at2 === 0)) this.encodePiece(piece, out);
      }
    }
    return out;
  }

  private encodePiece(piece: string, out: number[]): void {
    const hit = this.cache.get(piece);
    if (hit) {
      for (const id of hit) out.push(id);
      return;
    }
    const syms = this.p.byteLevel ? this.byteSymbols(piece) : this.charSymbols(piece);
    if (syms.length > 1) this.merge(syms);
    if (this.cache.size >= 1 << 18) this.cache.clear();
    this.cache.set(piece, syms);
    for (const id of syms) out.push(id);
  }

  private byteSymbols(piece: string): number[] {
    const bytes = this.enc.encode(piece);
    if (this.p.ignoreMerges) {
      let s = "";
      for (const b of bytes) s += BYTE_TO_CHAR[b];
      const id = this.ids.get(s);
      if (id !== undefined) return [id];
    }
    const syms: number[] = new Array(bytes.length);
    for (let i = 0; i < bytes.length; i++) syms[i] = this.byteIds[bytes[i]!]!;
    return syms;
  }

  private charSymbols(piece: string): number[] {
    if (this.p.ignoreMerges) {
      const id = this.ids.get(piece);
      if (id !== undefined) return [id];
    }
    const syms: number[] = [];
    let lastUnk = false;
    for (const ch of piece) {
      const id = this.ids.get(ch);
      if (id !== undefined) {
        syms.push(id);
        lastUnk = false;
        continue;
      }
      if (this.p.byteFallback) {
        const bytes = this.enc.encode(ch);
        const fb = Array.from(bytes, (b) => this.fallback[b]!);
        if (fb.every((x) => x >= 0)) {
          for (const x of fb) syms.push(x);
          lastUnk = false;
          continue;
        }
      }
      // no unknown token: Rust drops the character
      if (this.unk === null) continue;
      if (!(this.p.fuseUnk && lastUnk)) syms.push(this.unk);
      lastUnk = true;
    }
    return syms;
  }

  /** Ids → text as Rust's decode gives it; ids without a token are left out, as there. */
  decode(ids: ArrayLike<number>, skipSpecial: boolean): string {
    const tokens: string[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      const t = this.vocab[id];
      if (t === undefined || t === "") continue;
      if (skipSpecial && this.special.has(id)) continue;
      tokens.push(t);
    }
    return this.p.decode ? this.p.decode(tokens).join("") : tokens.join(" ");
  }

  /**
   * The bytes of ids for a text stream: what decode gives, except that invalid UTF-8 is left to the
   * caller's streaming decoder. `atStart`: the ids begin the text (decoders that strip a leading
   * space, Llama 2's Strip and Metaspace, do it there only).
   */
  decodeBytes(ids: ArrayLike<number>, skipSpecial: boolean, atStart: boolean): Uint8Array {
    const bytes: number[] = [];
    let first = atStart;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      const t = this.vocab[id];
      if (t === undefined || t === "" || (skipSpecial && this.special.has(id))) continue;
      if (this.p.byteLevel) {
        const own = [...t].every((c) => CHAR_TO_BYTE.has(c));
        if (own) for (const c of t) bytes.push(CHAR_TO_BYTE.get(c)!);
        else for (const b of this.enc.encode(t)) bytes.push(b);
        continue;
      }
      const b = fallbackByte(t);
      let s: string;
      if (b >= 0) {
        bytes.push(b);
        first = false;
        continue;
      }
      if (!this.p.decode) s = first ? t : ` ${t}`;
      else if (first) s = this.p.decode([t]).join("");
      // a token before it keeps the decoders from treating it as the first (STOP survives them all)
      else s = this.p.decode([STOP, t]).join("").slice(STOP.length);
      first = false;
      for (const x of this.enc.encode(s)) bytes.push(x);
    }
    return Uint8Array.from(bytes);
  }
}

/** Vocabulary, merges, added tokens and pipeline of a foreign tokenizer.json. */
export function readForeign(
  j: Obj,
  where: string,
  vocabAndMerges: (j: Obj) => { vocab: string[]; merges: [string, string][] },
): { vocab: string[]; merges: [string, string][]; pipeline: ForeignPipeline } {
  const pipeline = foreignPipeline(j, where, CHAR_TO_BYTE as Map<string, number>);
  const { vocab, merges } = vocabAndMerges(j);
  const model = (j.model as Obj).vocab as Record<string, number>;
  pipeline.added.forEach((a, i) => {
    // Rust re-adds the file's added tokens on load, and one whose text the model already has takes the model's id
    const own = Object.hasOwn(model, a.content) ? model[a.content]! : undefined;
    if (own !== undefined && own !== a.id) {
      a.id = own;
      return;
    }
    if (vocab[a.id] !== undefined && vocab[a.id] !== a.content)
      throw new InputError(
        `${where}: added_tokens[${i}].id is ${a.id}, which ${JSON.stringify(vocab[a.id])} already has`,
      );
    vocab[a.id] = a.content;
  });
  // ids no token has (a vocabulary with holes, as DeepSeek-V3's has) decode to nothing, as in Rust
  for (let i = 0; i < vocab.length; i++) if (vocab[i] === undefined) vocab[i] = "";
  return { vocab, merges, pipeline };
}
