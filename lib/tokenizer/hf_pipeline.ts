// Any Hugging Face tokenizer.json of a BPE model, read into the steps our encoder runs: the
// normalizer, the pre-tokenizers, the BPE model's flags and the decoders, each doing what the Rust
// `tokenizers` library (v0.23: normalizers/, pre_tokenizers/, decoders/, models/bpe/) does, so the
// ids are the ones it gives. Byte-level files (GPT-2, Llama 3, Qwen, DeepSeek-V3) and
// SentencePiece-style files with byte fallback (Llama 2, Mistral, Gemma) use only the components
// here; a component or setting we do not run is refused with the field that names it.
// Files that `tokenize train` writes never come here: hf_load.ts reads them for the fast path.
import { InputError } from "../base/errors.ts";
import { onigRegExp, WS } from "./hf_regex.ts";

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === "object" && !Array.isArray(v);

function show(v: unknown): string {
  if (v === undefined) return "missing";
  const s = JSON.stringify(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** A run of text as the pipeline passes it on; `start` says it begins the input (Metaspace's "first"). */
export type Normalize = (s: string) => string;
export type PreTokenize = (pieces: string[], atStart: boolean) => string[];
export type Decode = (tokens: string[]) => string[];

export interface ForeignAdded {
  id: number;
  content: string;
  special: boolean;
  normalized: boolean;
  lstrip: boolean;
  rstrip: boolean;
}

export interface ForeignPipeline {
  normalize: Normalize | null;
  preTokenize: PreTokenize;
  /** the last pre-tokenizer is ByteLevel: pieces become UTF-8 bytes, each a token of the 256-byte alphabet */
  byteLevel: boolean;
  byteFallback: boolean;
  unkToken: string | null;
  fuseUnk: boolean;
  ignoreMerges: boolean;
  decode: Decode | null;
  added: ForeignAdded[];
}

class Fields {
  constructor(readonly where: string) {}

  refuse(path: string, value: unknown, want: string): never {
    throw new InputError(`${this.where}: ${path} is ${show(value)}; bunlm reads ${want}`);
  }

  object(v: unknown, path: string, want: string): Obj {
    if (!isObj(v)) this.refuse(path, v, want);
    return v;
  }

  str(o: Obj, key: string, path: string): string {
    const v = o[key];
    if (typeof v !== "string") this.refuse(`${path}.${key}`, v, "a string");
    return v;
  }

  bool(o: Obj, key: string, path: string, dflt: boolean): boolean {
    const v = o[key];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== "boolean") this.refuse(`${path}.${key}`, v, "true or false");
    return v;
  }

  list(v: unknown, path: string): unknown[] {
    if (!Array.isArray(v)) this.refuse(path, v, "a list");
    return v;
  }

  /** {"String": s} or {"Regex": r} as a global RegExp. */
  pattern(v: unknown, path: string): RegExp {
    const p = this.object(v, path, '{"String": ...} or {"Regex": ...}');
    if (typeof p.String === "string") return new RegExp(p.String.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"), "gu");
    if (typeof p.Regex === "string")
      try {
        return onigRegExp(p.Regex);
      } catch (e) {
        throw new InputError(
          `${this.where}: ${path} is ${show(p)}; bunlm cannot run this Oniguruma pattern in JavaScript (${(e as Error).message})`,
        );
      }
    this.refuse(path, v, '{"String": ...} or {"Regex": ...}');
  }
}

// ---- normalizers (tokenizers/src/normalizers) ----

const FORMS = ["NFC", "NFD", "NFKC", "NFKD"];
const NORMALIZERS = `${FORMS.join(", ")}, Sequence, Prepend, Replace, Lowercase or Strip`;

function normalizer(f: Fields, v: unknown, path: string): Normalize {
  const n = f.object(v, path, `a normalizer (${NORMALIZERS})`);
  const type = n.type;
  if (typeof type === "string" && FORMS.includes(type)) return (s) => s.normalize(type);
  switch (type) {
    case "Sequence": {
      const steps = f
        .list(n.normalizers, `${path}.normalizers`)
        .map((x, i) => normalizer(f, x, `${path}.normalizers[${i}]`));
      return (s) => steps.reduce((acc, step) => step(acc), s);
    }
    case "Prepend": {
      const p = f.str(n, "prepend", path);
      // Rust: only a non-empty string gets it
      return (s) => (s.length ? p + s : s);
    }
    case "Replace": {
      const re = f.pattern(n.pattern, `${path}.pattern`);
      const content = f.str(n, "content", path);
      return (s) => s.replace(re, () => content);
    }
    case "Lowercase":
      return (s) => s.toLowerCase();
    case "Strip": {
      const left = f.bool(n, "strip_left", path, true),
        right = f.bool(n, "strip_right", path, true);
      const l = new RegExp(`^[${WS}]+`, "u"),
        r = new RegExp(`[${WS}]+$`, "u");
      return (s) => {
        if (left) s = s.replace(l, "");
        if (right) s = s.replace(r, "");
        return s;
      };
    }
  }
  f.refuse(`${path}.type`, type, NORMALIZERS);
}

// ---- pre-tokenizers (tokenizers/src/pre_tokenizers) ----

type Behavior = "Removed" | "Isolated" | "MergedWithPrevious" | "MergedWithNext" | "Contiguous";
const BEHAVIORS: Behavior[] = ["Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"];

/** `s` cut at the matches of `re`, the matches kept as `behavior` says (Rust's NormalizedString::split). */
export function splitBy(s: string, re: RegExp, behavior: Behavior, out: string[]): void {
  const chunks: [string, boolean][] = [];
  re.lastIndex = 0;
  let last = 0;
  for (let m = re.exec(s); m !== null; m = re.exec(s)) {
    if (m[0].length === 0) {
      re.lastIndex++;
      continue;
    }
    if (m.index > last) chunks.push([s.slice(last, m.index), false]);
    chunks.push([m[0], true]);
    last = m.index + m[0].length;
  }
  if (last < s.length) chunks.push([s.slice(last), false]);
  let merged: string[] = [];
  let prev = false;
  switch (behavior) {
    case "Isolated":
      merged = chunks.map((c) => c[0]);
      break;
    case "Removed":
      merged = chunks.filter((c) => !c[1]).map((c) => c[0]);
      break;
    case "MergedWithPrevious":
      for (const [t, m] of chunks) {
        if (m && !prev && merged.length) merged[merged.length - 1] += t;
        else merged.push(t);
        prev = m;
      }
      break;
    case "MergedWithNext":
      for (let i = chunks.length - 1; i >= 0; i--) {
        const [t, m] = chunks[i]!;
        if (m && !prev && merged.length) merged[merged.length - 1] = t + merged[merged.length - 1];
        else merged.push(t);
        prev = m;
      }
      merged.reverse();
      break;
    case "Contiguous":
      for (const [t, m] of chunks) {
        if (m === prev && merged.length) merged[merged.length - 1] += t;
        else merged.push(t);
        prev = m;
      }
      break;
    default:
      behavior satisfies never;
  }
  for (const t of merged) if (t.length) out.push(t);
}

/** GPT-2's split, what ByteLevel runs with use_regex (tokenizers/src/pre_tokenizers/byte_level.rs). */
const GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

const PRE_TOKENIZERS = "Sequence, Split, ByteLevel, Metaspace or Digits";

interface PreStep {
  run: PreTokenize;
  byteLevel: boolean;
}

function preTokenizer(f: Fields, v: unknown, path: string): PreStep[] {
  const p = f.object(v, path, `a pre-tokenizer (${PRE_TOKENIZERS})`);
  const each = (fn: (s: string, first: boolean, out: string[]) => void): PreTokenize => {
    return (pieces, atStart) => {
      const out: string[] = [];
      pieces.forEach((s, i) => fn(s, atStart && i === 0, out));
      return out;
    };
  };
  switch (p.type) {
    case "Sequence":
      return f
        .list(p.pretokenizers, `${path}.pretokenizers`)
        .flatMap((x, i) => preTokenizer(f, x, `${path}.pretokenizers[${i}]`));
    case "Split": {
      const re = f.pattern(p.pattern, `${path}.pattern`);
      const behavior = p.behavior as Behavior;
      if (!BEHAVIORS.includes(behavior)) f.refuse(`${path}.behavior`, p.behavior, BEHAVIORS.join(", "));
      if (f.bool(p, "invert", path, false)) f.refuse(`${path}.invert`, p.invert, "false only");
      return [{ run: each((s, _, out) => splitBy(s, re, behavior, out)), byteLevel: false }];
    }
    case "ByteLevel": {
      const prefix = f.bool(p, "add_prefix_space", path, true);
      const re = f.bool(p, "use_regex", path, true) ? onigRegExp(GPT2_PATTERN) : null;
      const run = each((s, _, out) => {
        // Rust adds the space to every piece that reaches it, not only the first
        if (prefix && !s.startsWith(" ")) s = ` ${s}`;
        if (re) splitBy(s, re, "Isolated", out);
        else out.push(s);
      });
      return [{ run, byteLevel: true }];
    }
    case "Metaspace": {
      const rep = f.str(p, "replacement", path);
      if ([...rep].length !== 1) f.refuse(`${path}.replacement`, rep, "one character");
      // older files say add_prefix_space (true: always); newer ones prepend_scheme
      const scheme = p.prepend_scheme ?? (f.bool(p, "add_prefix_space", path, true) ? "always" : "never");
      if (!["always", "first", "never"].includes(scheme as string))
        f.refuse(`${path}.prepend_scheme`, scheme, '"always", "first" or "never"');
      const split = f.bool(p, "split", path, true);
      const sep = new RegExp(rep.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"), "gu");
      const run = each((s, first, out) => {
        s = s.replaceAll(" ", rep);
        if ((scheme === "always" || (scheme === "first" && first)) && !s.startsWith(rep)) s = rep + s;
        if (split) splitBy(s, sep, "MergedWithNext", out);
        else if (s.length) out.push(s);
      });
      return [{ run, byteLevel: false }];
    }
    case "Digits": {
      // Rust: char::is_numeric, the Unicode N categories
      const re = f.bool(p, "individual_digits", path, false) ? /\p{N}/gu : /\p{N}+/gu;
      return [{ run: each((s, _, out) => splitBy(s, re, "Isolated", out)), byteLevel: false }];
    }
  }
  f.refuse(`${path}.type`, p.type, PRE_TOKENIZERS);
}

// ---- decoders (tokenizers/src/decoders) ----

const DECODERS = "Sequence, ByteLevel, Replace, ByteFallback, Fuse, Strip or Metaspace";

function _lossyUtf8(bytes: number[]): string {
  return new TextDecoder("utf-8", { fatal: false }).decode(Uint8Array.from(bytes));
}

/** `<0xNN>`: a byte-fallback token's byte, else -1. */
export function fallbackByte(t: string): number {
  return t.length === 6 && t.startsWith("<0x") && t.endsWith(">") && /^[0-9A-Fa-f]{2}$/.test(t.slice(3, 5))
    ? Number.parseInt(t.slice(3, 5), 16)
    : -1;
}

function decoder(f: Fields, v: unknown, path: string, charToByte: Map<string, number>): Decode {
  const d = f.object(v, path, `a decoder (${DECODERS})`);
  switch (d.type) {
    case "Sequence": {
      const steps = f
        .list(d.decoders, `${path}.decoders`)
        .map((x, i) => decoder(f, x, `${path}.decoders[${i}]`, charToByte));
      return (ts) => steps.reduce((acc, step) => step(acc), ts);
    }
    case "ByteLevel":
      // every token's characters back to bytes; a token with a character outside the 256-byte
      // alphabet (an added token such as DeepSeek's <｜begin▁of▁sentence｜>) is its own UTF-8
      return (ts) => {
        const bytes: number[] = [];
        const enc = new TextEncoder();
        for (const t of ts) {
          const mapped: number[] = [];
          for (const ch of t) {
            const b = charToByte.get(ch);
            if (b === undefined) break;
            mapped.push(b);
          }
          if (mapped.length === [...t].length) for (const b of mapped) bytes.push(b);
          else for (const b of enc.encode(t)) bytes.push(b);
        }
        return [_lossyUtf8(bytes)];
      };
    case "Replace": {
      const re = f.pattern(d.pattern, `${path}.pattern`);
      const content = f.str(d, "content", path);
      return (ts) => ts.map((t) => t.replace(re, () => content));
    }
    case "ByteFallback":
      // runs of <0xNN> tokens become their UTF-8 text, or one U+FFFD per byte when invalid
      return (ts) => {
        const out: string[] = [];
        let run: number[] = [];
        const flush = () => {
          if (!run.length) return;
          try {
            out.push(new TextDecoder("utf-8", { fatal: true }).decode(Uint8Array.from(run)));
          } catch {
            for (let i = 0; i < run.length; i++) out.push("\ufffd");
          }
          run = [];
        };
        for (const t of ts) {
          const b = fallbackByte(t);
          if (b >= 0) run.push(b);
          else {
            flush();
            out.push(t);
          }
        }
        flush();
        return out;
      };
    case "Fuse":
      return (ts) => [ts.join("")];
    case "Strip": {
      const content = f.str(d, "content", path);
      const start = Number(d.start ?? 0),
        stop = Number(d.stop ?? 0);
      return (ts) =>
        ts.map((t) => {
          const cs = [...t];
          let a = 0,
            b = cs.length;
          while (a < start && a < cs.length && cs[a] === content) a++;
          for (let i = 0; i < stop && b > a && cs[b - 1] === content; i++) b--;
          return cs.slice(a, b).join("");
        });
    }
    case "Metaspace": {
      const rep = f.str(d, "replacement", path);
      const scheme = d.prepend_scheme ?? (f.bool(d, "add_prefix_space", path, true) ? "always" : "never");
      return (ts) =>
        ts.map((t, i) => {
          const s = t.replaceAll(rep, " ");
          return i === 0 && scheme !== "never" && s.startsWith(" ") ? s.slice(1) : s;
        });
    }
  }
  f.refuse(`${path}.type`, d.type, DECODERS);
}

// ---- the whole file ----

/** What our encoder needs beside vocab and merges, from a tokenizer.json we did not write. */
export function foreignPipeline(j: Obj, where: string, charToByte: Map<string, number>): ForeignPipeline {
  const f = new Fields(where);
  const m = f.object(j.model, "model", "a BPE model");
  if (m.type !== "BPE")
    f.refuse("model.type", m.type, '"BPE" only (WordPiece, Unigram and WordLevel models are not supported)');
  if (m.dropout !== null && m.dropout !== undefined && m.dropout !== 0)
    f.refuse("model.dropout", m.dropout, "null only");
  for (const k of ["continuing_subword_prefix", "end_of_word_suffix"])
    if (m[k] !== null && m[k] !== undefined && m[k] !== "") f.refuse(`model.${k}`, m[k], 'null or "" only');
  const unk = m.unk_token ?? null;
  if (unk !== null && typeof unk !== "string") f.refuse("model.unk_token", unk, "a string or null");
  const steps =
    j.pre_tokenizer === null || j.pre_tokenizer === undefined ? [] : preTokenizer(f, j.pre_tokenizer, "pre_tokenizer");
  const bl = steps.findIndex((s) => s.byteLevel);
  if (bl >= 0 && bl !== steps.length - 1)
    f.refuse("pre_tokenizer", j.pre_tokenizer, "ByteLevel as the last pre-tokenizer only");
  const added = (
    j.added_tokens === null || j.added_tokens === undefined ? [] : f.list(j.added_tokens, "added_tokens")
  ).map((a, i): ForeignAdded => {
    const at = `added_tokens[${i}]`;
    const o = f.object(a, at, '{"id", "content", ...}');
    if (!Number.isInteger(o.id) || (o.id as number) < 0) f.refuse(`${at}.id`, o.id, "a non-negative whole number");
    if (typeof o.content !== "string" || o.content === "") f.refuse(`${at}.content`, o.content, "a non-empty string");
    // Rust's word-boundary test for single_word is not reproduced here
    if (f.bool(o, "single_word", at, false)) f.refuse(`${at}.single_word`, o.single_word, "false only");
    const special = f.bool(o, "special", at, false);
    return {
      id: o.id as number,
      content: o.content,
      special,
      // Rust's default: a special token is matched in the raw text, another after normalization
      normalized: f.bool(o, "normalized", at, !special),
      lstrip: f.bool(o, "lstrip", at, false),
      rstrip: f.bool(o, "rstrip", at, false),
    };
  });
  const runs = steps.map((s) => s.run);
  return {
    normalize: j.normalizer === null || j.normalizer === undefined ? null : normalizer(f, j.normalizer, "normalizer"),
    preTokenize: (pieces, atStart) => runs.reduce((ps, run) => run(ps, atStart), pieces),
    byteLevel: bl >= 0,
    byteFallback: f.bool(m, "byte_fallback", "model", false),
    unkToken: unk,
    fuseUnk: f.bool(m, "fuse_unk", "model", false),
    ignoreMerges: f.bool(m, "ignore_merges", "model", false),
    decode: j.decoder === null || j.decoder === undefined ? null : decoder(f, j.decoder, "decoder", charToByte),
    added,
  };
}
