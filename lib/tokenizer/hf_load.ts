// Reading a Hugging Face tokenizer.json into what our encoder runs. Files `tokenize train` wrote run on
// the fast path below; any other BPE file goes to hf_pipeline.ts (readSpec chooses). The fast path implements one
// pipeline, the one hf_json.ts writes (NFC → our Split regex, Isolated → ByteLevel without prefix
// space or regex → BPE without dropout, byte fallback, subword affixes or ignore_merges → ByteLevel
// decoding, added tokens matched verbatim). A file asking for anything else would load in Hugging
// Face's library and give other ids there, so every field that changes ids is checked and any other
// value is refused, naming the field. Variants our code runs exactly are accepted: normalizer null or
// another Unicode normal form (String.prototype.normalize), and the settings that only move offsets,
// which we never compute (trim_offsets, a ByteLevel post_processor, the decoder's flags, which
// Hugging Face's ByteLevel decoder ignores).
import { InputError } from "../base/errors.ts";
import { SPLIT_PATTERN } from "./pretokenize.ts";
import type { NormalForm, SpecialToken, TokenizerSpec } from "./tokenizer.ts";
import { readForeign } from "./hf_tokenizer.ts";

const FORMS: NormalForm[] = ["NFC", "NFD", "NFKC", "NFKD"];

type Obj = Record<string, unknown>;

function show(v: unknown): string {
  if (v === undefined) return "missing";
  const s = JSON.stringify(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

const isObj = (v: unknown): v is Obj => v !== null && typeof v === "object" && !Array.isArray(v);

class Fields {
  constructor(private where: string) {}

  refuse(path: string, value: unknown, want: string): never {
    throw new InputError(
      `${this.where}: ${path} is ${show(value)}; bunlm's encoder implements ${want} only (a tokenizer made by \`tokenize train\`)`,
    );
  }

  bad(path: string, what: string): never {
    throw new InputError(`${this.where}: ${path ? `${path} ` : ""}${what}`);
  }

  /** o[key] must be one of `allowed` (undefined: the field may be absent, where HF's default is ours). */
  oneOf(
    o: Obj,
    key: string,
    path: string,
    allowed: unknown[],
    want = allowed
      .filter((a) => a !== undefined)
      .map((a) => JSON.stringify(a))
      .join(" or "),
  ): unknown {
    const v = o[key];
    if (!allowed.includes(v)) this.refuse(`${path}.${key}`.replace(/^\./, ""), v, want);
    return v;
  }

  object(v: unknown, path: string, want: string): Obj {
    if (!isObj(v)) this.refuse(path, v, want);
    return v;
  }
}

function normalizer(f: Fields, v: unknown): NormalForm | null {
  if (v === null || v === undefined) return null;
  const n = f.object(v, "normalizer", "NFC, NFD, NFKC, NFKD or null");
  return f.oneOf(n, "type", "normalizer", FORMS, "NFC, NFD, NFKC, NFKD or null") as NormalForm;
}

function preTokenizer(f: Fields, v: unknown): void {
  const want = "a Sequence of Split and ByteLevel";
  const p = f.object(v, "pre_tokenizer", want);
  f.oneOf(p, "type", "pre_tokenizer", ["Sequence"]);
  const list = p.pretokenizers;
  if (!Array.isArray(list) || list.length !== 2) f.refuse("pre_tokenizer.pretokenizers", list, "[Split, ByteLevel]");
  const split = f.object(list[0], "pre_tokenizer.pretokenizers[0]", "Split");
  const at = "pre_tokenizer.pretokenizers[0]";
  f.oneOf(split, "type", at, ["Split"]);
  const pattern = f.object(split.pattern, `${at}.pattern`, '{"Regex": its own split pattern}');
  if (pattern.Regex !== SPLIT_PATTERN)
    f.refuse(`${at}.pattern`, pattern, "its own split pattern (pretokenize.ts SPLIT_PATTERN)");
  f.oneOf(split, "behavior", at, ["Isolated"]);
  f.oneOf(split, "invert", at, [false]);
  const bl = f.object(list[1], "pre_tokenizer.pretokenizers[1]", "ByteLevel");
  const at1 = "pre_tokenizer.pretokenizers[1]";
  f.oneOf(bl, "type", at1, ["ByteLevel"]);
  // HF's defaults for both are true, so an absent field is refused too
  f.oneOf(bl, "add_prefix_space", at1, [false]);
  f.oneOf(bl, "use_regex", at1, [false]);
}

function model(f: Fields, v: unknown): { vocab: string[]; merges: [string, string][] } {
  const m = f.object(v, "model", "a BPE model");
  f.oneOf(m, "type", "model", ["BPE"]);
  f.oneOf(m, "dropout", "model", [null, undefined], "null");
  f.oneOf(m, "byte_fallback", "model", [false, undefined], "false");
  f.oneOf(m, "continuing_subword_prefix", "model", [null, undefined], "null");
  f.oneOf(m, "end_of_word_suffix", "model", [null, undefined], "null");
  f.oneOf(m, "ignore_merges", "model", [false, undefined], "false");
  return vocabAndMerges(f, m);
}

function vocabAndMerges(f: Fields, m: Obj): { vocab: string[]; merges: [string, string][] } {
  if (!isObj(m.vocab)) f.bad("model.vocab", `is ${show(m.vocab)}; expected an object of token → id`);
  const vocab: string[] = [];
  for (const [tok, id] of Object.entries(m.vocab)) {
    if (!Number.isInteger(id) || (id as number) < 0)
      f.bad(`model.vocab[${JSON.stringify(tok)}]`, `is ${show(id)}; expected a non-negative whole number`);
    if (vocab[id as number] !== undefined)
      f.bad(
        `model.vocab[${JSON.stringify(tok)}]`,
        `is ${id}, which ${JSON.stringify(vocab[id as number])} already has`,
      );
    vocab[id as number] = tok;
  }
  if (!Array.isArray(m.merges)) f.bad("model.merges", `is ${show(m.merges)}; expected a list of merges`);
  const merges = m.merges.map((x: unknown, i: number): [string, string] => {
    if (Array.isArray(x) && x.length === 2 && typeof x[0] === "string" && typeof x[1] === "string") return [x[0], x[1]];
    const sp = typeof x === "string" ? x.indexOf(" ") : -1;
    if (sp < 0) f.bad(`model.merges[${i}]`, `is ${show(x)}; expected "left right" or ["left", "right"]`);
    return [(x as string).slice(0, sp), (x as string).slice(sp + 1)];
  });
  return { vocab, merges };
}

function addedTokens(f: Fields, v: unknown, vocab: string[]): SpecialToken[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) f.bad("added_tokens", `is ${show(v)}; expected a list`);
  return v.map((a: unknown, i: number) => {
    const at = `added_tokens[${i}]`;
    if (!isObj(a)) f.bad(at, `is ${show(a)}; expected {"id", "content", ...}`);
    if (!Number.isInteger(a.id) || (a.id as number) < 0)
      f.bad(`${at}.id`, `is ${show(a.id)}; expected a non-negative whole number`);
    if (typeof a.content !== "string" || a.content === "")
      f.bad(`${at}.content`, `is ${show(a.content)}; expected a non-empty string`);
    const id = a.id as number,
      content = a.content as string;
    if (vocab[id] !== undefined && vocab[id] !== content)
      f.bad(`${at}.id`, `is ${id}, which ${JSON.stringify(vocab[id])} already has`);
    // matched verbatim in the raw text, and skipped by decode's skip-special: what these four false and special true mean
    for (const k of ["normalized", "lstrip", "rstrip", "single_word"]) f.oneOf(a, k, at, [false]);
    f.oneOf(a, "special", at, [true]);
    vocab[id] = content;
    return { id, content };
  });
}

/**
 * A parsed tokenizer.json as the encoder's spec: a file `tokenize train` wrote runs on the fast
 * path; any other BPE file runs its own pipeline (hf_pipeline.ts), or is refused naming the field.
 */
export function readSpec(j: unknown, where: string): TokenizerSpec {
  try {
    return specFromJson(j, where);
  } catch (e) {
    if (!(e instanceof InputError) || !isObj(j)) throw e;
  }
  const f: Fields = new Fields(where);
  const { vocab, merges, pipeline } = readForeign(j, where, (x) =>
    vocabAndMerges(f, f.object(x.model, "model", "a BPE model")),
  );
  const specials = pipeline.added.map((a) => ({ id: a.id, content: a.content, special: a.special }));
  return { vocab, merges, specials, normalizer: null, foreign: pipeline };
}

/** A tokenizer.json in the form `tokenize train` writes as the encoder's spec; `where` (the file) starts every error. */
export function specFromJson(j: unknown, where: string): TokenizerSpec {
  const f: Fields = new Fields(where); // annotated: TS narrows on a never-returning method only then
  if (!isObj(j)) f.bad("", "is not a JSON object");
  // truncation and padding change the ids Hugging Face's encode returns
  f.oneOf(j, "truncation", "", [null, undefined], "null");
  f.oneOf(j, "padding", "", [null, undefined], "null");
  const form = normalizer(f, j.normalizer);
  preTokenizer(f, j.pre_tokenizer);
  const post = j.post_processor;
  if (post !== null && post !== undefined)
    f.oneOf(
      f.object(post, "post_processor", "null or ByteLevel"),
      "type",
      "post_processor",
      ["ByteLevel"],
      'null or "ByteLevel"',
    );
  f.oneOf(f.object(j.decoder, "decoder", "ByteLevel"), "type", "decoder", ["ByteLevel"]);
  const { vocab, merges } = model(f, j.model);
  const specials = addedTokens(f, j.added_tokens, vocab);
  for (let i = 0; i < vocab.length; i++)
    if (vocab[i] === undefined) f.bad("model.vocab", `has no token with id ${i} (ids must run from 0 without gaps)`);
  return { vocab, merges, specials, normalizer: form };
}
