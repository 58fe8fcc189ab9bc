// The tokenizer: byte-level BPE encode/decode over a Hugging Face tokenizer.json.
// encode: split on special tokens → NFC (or the file's normal form) → pre-tokenize (pretokenize.ts) →
// UTF-8 bytes → byte tokens → merges by rank (lowest first, leftmost on ties: what HF's BPE model
// does), with a cache per piece.
// decode: token strings → bytes → UTF-8 (invalid sequences become U+FFFD, as HF's ByteLevel decoder does).
// That is the fast path, for files `tokenize train` writes. Any other Hugging Face tokenizer.json of a
// BPE model runs its own normalizer, pre-tokenizers and decoders (hf_tokenizer.ts) around the same
// merge loop; hf_load.ts decides which, and refuses what neither runs, naming the field.
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { createHash } from "node:crypto";
import { BYTE_TO_CHAR, CHAR_TO_BYTE } from "./bytes.ts";
import { splitPieces, SpecialSplitter } from "./pretokenize.ts";
import { readSpec } from "./hf_load.ts";
import { ForeignEncoder } from "./hf_tokenizer.ts";
import type { ForeignPipeline } from "./hf_pipeline.ts";
import { InputError } from "../base/errors.ts";
import { readJson, readJsonObject, readRegular } from "../io/files.ts";
import { tokenContent } from "./special_ids.ts";

const SHIFT = 1048576;
const CACHE_MAX = 1 << 18;
/** pieces longer than this merge through a heap (mergeLong) */
const LONG = 128;

/** A min-heap of numbers (a candidate merge's rank * POS + position) in a growing Float64Array. */
class _Heap {
  private k = new Float64Array(64);
  size = 0;

  push(x: number): void {
    if (this.size === this.k.length) {
      const bigger = new Float64Array(this.k.length * 2);
      bigger.set(this.k);
      this.k = bigger;
    }
    const k = this.k;
    let i = this.size++;
    while (i > 0) {
      const up = (i - 1) >> 1;
      if (k[up]! <= x) break;
      k[i] = k[up]!;
      i = up;
    }
    k[i] = x;
  }

  pop(): number {
    const k = this.k;
    const top = k[0]!;
    const x = k[--this.size]!;
    let i = 0;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= this.size) break;
      if (c + 1 < this.size && k[c + 1]! < k[c]!) c++;
      if (k[c]! >= x) break;
      k[i] = k[c]!;
      i = c;
    }
    k[i] = x;
    return top;
  }
}

/** positions in a long piece: rank * POS + position orders candidates by rank, then leftmost */
const POS = 1 << 24;

export interface SpecialToken {
  id: number;
  content: string;
  /** false: an added token that decode's skip-special keeps (Qwen's <think>); absent means true */
  special?: boolean;
}

export type NormalForm = "NFC" | "NFD" | "NFKC" | "NFKD";

export interface TokenizerSpec {
  /** id → token string (byte-level characters for BPE tokens, the literal text for special tokens) */
  vocab: string[];
  merges: [string, string][];
  specials: SpecialToken[];
  /** Unicode normalization before pre-tokenizing; null: none. Default NFC, what `tokenize train` writes. */
  normalizer?: NormalForm | null;
  /** a Hugging Face file other than ours: its own pipeline (hf_pipeline.ts) instead of NFC + our split */
  foreign?: ForeignPipeline;
}

/**
 * tokenizer_config.json with its chat template as one string: transformers saves newer models' template
 * in DIR/chat_template.jinja (which wins over the config's, as in transformers), and some configs hold a
 * list of named templates, of which transformers' apply_chat_template uses "default".
 */
function _withChatTemplate(dir: string, cfg: Record<string, unknown>, cfgFile: string): Record<string, unknown> {
  const jinja = join(dir, "chat_template.jinja");
  if (existsSync(jinja)) return { ...cfg, chat_template: readRegular(jinja).toString("utf8") };
  const t = cfg.chat_template;
  if (!Array.isArray(t)) return cfg;
  const named = t.find((x) => x?.name === "default");
  if (typeof named?.template !== "string")
    throw new InputError(`${cfgFile}: chat_template is a list of templates without one named "default"`);
  return { ...cfg, chat_template: named.template };
}

export class Tokenizer {
  readonly vocab: string[];
  readonly specials: SpecialToken[];
  readonly hash: string;
  private ids = new Map<string, number>();
  private ranks = new Map<number, number>(); // pair key → rank * SHIFT + merged id
  private byteIds = new Int32Array(256);
  private special = new Map<string, number>();
  private specialIds = new Set<number>();
  private splitter: SpecialSplitter;
  private cache = new Map<string, number[]>();
  private enc = new TextEncoder();
  private buf = new Uint8Array(1024);
  private form: NormalForm | null;
  private foreign: ForeignEncoder | null = null;
  config: Record<string, any> = {};
  /**
   * The BOS id transformers' tokenizer puts before every text it encodes with special tokens (Llama 2,
   * Llama 3, Gemma: add_bos_token, or a TemplateProcessing post-processor that starts with the bos),
   * null when it adds none. encode never adds it; pack and eval do, where transformers would.
   */
  addedBos: number | null = null;

  constructor(spec: TokenizerSpec, hash = "") {
    this.vocab = spec.vocab;
    this.specials = spec.specials;
    this.form = spec.normalizer === undefined ? "NFC" : spec.normalizer;
    // "" marks an id no token has (a foreign vocabulary with holes)
    spec.vocab.forEach((t, id) => t !== "" && this.ids.set(t, id));
    for (const s of spec.specials) {
      this.special.set(s.content, s.id);
      if (s.special !== false) this.specialIds.add(s.id);
      this.ids.set(s.content, s.id);
    }
    const byteLevel = !spec.foreign || spec.foreign.byteLevel;
    for (let b = 0; b < 256 && byteLevel; b++) {
      const id = this.ids.get(BYTE_TO_CHAR[b]!);
      if (id === undefined)
        throw new InputError(
          `model.vocab has no token for byte ${b} (${JSON.stringify(BYTE_TO_CHAR[b])}): not a byte-level BPE vocabulary`,
        );
      this.byteIds[b] = id;
    }
    spec.merges.forEach(([l, r], rank) => {
      const a = this.ids.get(l),
        b = this.ids.get(r),
        m = this.ids.get(l + r);
      if (a === undefined || b === undefined || m === undefined)
        throw new InputError(`model.merges[${rank}] ("${l}" "${r}") names a token not in the vocabulary`);
      const key = a * SHIFT + b;
      if (!this.ranks.has(key)) this.ranks.set(key, rank * SHIFT + m);
    });
    // a foreign file splits on its added tokens its own way (hf_tokenizer.ts)
    this.splitter = new SpecialSplitter(spec.foreign ? new Map() : this.special);
    this.hash = hash;
    if (spec.foreign)
      this.foreign = new ForeignEncoder(
        spec.foreign,
        this.ids,
        this.vocab,
        this.specialIds,
        (syms) => this.merge(syms),
        this.byteIds,
      );
  }

  /** Whether this is a Hugging Face file run through its own pipeline, not the fast path. */
  get isForeign(): boolean {
    return this.foreign !== null;
  }

  get size(): number {
    return this.vocab.length;
  }

  tokenToId(t: string): number | undefined {
    return this.ids.get(t);
  }

  specialId(content: string): number {
    const id = this.special.get(content);
    if (id === undefined) throw new Error(`tokenizer has no special token ${content}`);
    return id;
  }

  isSpecial(id: number): boolean {
    return this.specialIds.has(id);
  }

  /** BPE of one pre-token. */
  encodePiece(piece: string, out: number[]): void {
    const hit = this.cache.get(piece);
    if (hit) {
      for (const id of hit) out.push(id);
      return;
    }
    if (this.buf.length < piece.length * 3) this.buf = new Uint8Array(piece.length * 3);
    const n = this.enc.encodeInto(piece, this.buf).written!;
    const syms: number[] = new Array(n);
    for (let i = 0; i < n; i++) syms[i] = this.byteIds[this.buf[i]!]!;
    this.merge(syms);
    if (this.cache.size >= CACHE_MAX) this.cache.clear();
    this.cache.set(piece, syms);
    for (const id of syms) out.push(id);
  }

  /** BPE merges over `syms` in place: the lowest-ranked pair first, the leftmost on ties (HF's order). */
  private merge(syms: number[]): void {
    if (syms.length > LONG) {
      this.mergeLong(syms);
      return;
    }
    const ranks = this.ranks;
    while (syms.length > 1) {
      let best = Infinity,
        at = -1;
      for (let i = 0; i + 1 < syms.length; i++) {
        const r = ranks.get(syms[i]! * SHIFT + syms[i + 1]!);
        if (r !== undefined && r < best) (best = r), (at = i);
      }
      if (at < 0) break;
      syms[at] = best % SHIFT;
      syms.splice(at + 1, 1);
    }
  }

  /**
   * The same merges for a long piece (SentencePiece-style files have no pre-tokenizer that splits
   * words, so a whole paragraph is one piece): symbols in a linked list and candidate pairs in a heap
   * ordered by (rank, position), as Rust's BPE does; the scan above is quadratic in the length.
   */
  private mergeLong(syms: number[]): void {
    const n = syms.length;
    if (n >= POS) throw new InputError(`a piece of ${n} symbols is too long to encode`);
    const ranks = this.ranks;
    const id = Int32Array.from(syms),
      next = new Int32Array(n),
      prev = new Int32Array(n);
    for (let i = 0; i < n; i++) (next[i] = i + 1 < n ? i + 1 : -1), (prev[i] = i - 1);
    const heap = new _Heap();
    const push = (i: number) => {
      const j = next[i]!;
      if (j < 0) return;
      const r = ranks.get(id[i]! * SHIFT + id[j]!);
      if (r !== undefined) heap.push(Math.floor(r / SHIFT) * POS + i);
    };
    for (let i = 0; i + 1 < n; i++) push(i);
    const dead = -2;
    while (heap.size) {
      const key = heap.pop();
      const i = key % POS,
        rank = (key - i) / POS;
      const j = next[i]!;
      if (prev[i] === dead || j < 0) continue;
      // stale unless the pair there now still has this rank (each rank belongs to one pair)
      const r = ranks.get(id[i]! * SHIFT + id[j]!);
      if (r === undefined || Math.floor(r / SHIFT) !== rank) continue;
      id[i] = r % SHIFT;
      next[i] = next[j]!;
      if (next[j]! >= 0) prev[next[j]!] = i;
      prev[j] = dead;
      if (prev[i]! >= 0) push(prev[i]!);
      push(i);
    }
    syms.length = 0;
    for (let i = 0; i >= 0; i = next[i]!) syms.push(id[i]!);
  }

  /** Plain text (no special tokens) → ids. */
  private encodeOrdinary(text: string, out: number[] = []): number[] {
    const pieces = splitPieces(this.form ? text.normalize(this.form) : text);
    for (const p of pieces) this.encodePiece(p, out);
    return out;
  }

  /** Text → ids; special-token strings in the text become their ids (as HF's encode does, without adding a BOS). */
  encode(text: string, out: number[] = []): number[] {
    if (this.foreign) return this.foreign.encode(text, out);
    for (const [seg, sid] of this.splitter.split(text)) {
      if (sid >= 0) out.push(sid);
      else this.encodeOrdinary(seg, out);
    }
    return out;
  }

  /**
   * The bytes of `ids`, for a streaming decoder. `atStart`: these ids begin the text (foreign
   * decoders that drop a leading space, Llama 2's, do it only there).
   */
  decodeBytes(ids: ArrayLike<number>, skipSpecial = false, atStart = true): Uint8Array {
    if (this.foreign) {
      const bad = Array.prototype.find.call(ids, (id: number) => !(id >= 0 && id < this.vocab.length));
      if (bad !== undefined) throw new Error(`token id ${bad} is outside the vocabulary (size ${this.vocab.length})`);
      return this.foreign.decodeBytes(ids, skipSpecial, atStart);
    }
    const parts: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      const t = this.vocab[id];
      if (t === undefined) throw new Error(`token id ${id} is outside the vocabulary (size ${this.vocab.length})`);
      if (this.specialIds.has(id)) {
        if (!skipSpecial) for (const b of this.enc.encode(t)) parts.push(b);
        continue;
      }
      for (let k = 0; k < t.length; k++) parts.push(CHAR_TO_BYTE.get(t[k]!)!);
    }
    return Uint8Array.from(parts);
  }

  decode(ids: ArrayLike<number>, skipSpecial = false): string {
    if (this.foreign) {
      const bad = Array.prototype.find.call(ids, (id: number) => !(id >= 0 && id < this.vocab.length));
      if (bad !== undefined) throw new Error(`token id ${bad} is outside the vocabulary (size ${this.vocab.length})`);
      return this.foreign.decode(ids, skipSpecial);
    }
    return new TextDecoder("utf-8", { fatal: false }).decode(this.decodeBytes(ids, skipSpecial));
  }

  /** Load DIR/tokenizer.json (+ tokenizer_config.json when present). */
  static fromDir(dir: string): Tokenizer {
    let isFile = false;
    try {
      isFile = statSync(dir).isFile();
    } catch {}
    if (isFile) throw new InputError(`${dir}: is a file; give the directory that holds tokenizer.json`);
    const file = join(dir, "tokenizer.json");
    const j = readJson(file, "no tokenizer here (train one with `bun cmd/tokenize.ts train`)");
    // the hash is of the bytes as written, so a checkpoint can tell that its tokenizer file changed
    const t = Tokenizer.fromJSON(j, file, createHash("sha256").update(readRegular(file)).digest("hex").slice(0, 16));
    const cfgFile = join(dir, "tokenizer_config.json");
    let cfg: Record<string, unknown> = {};
    try {
      cfg = readJsonObject(cfgFile);
    } catch (e) {
      if (!(e instanceof InputError && e.message === `${cfgFile}: no such file`)) throw e;
    }
    cfg = _withChatTemplate(dir, cfg, cfgFile);
    for (const k of ["chat_template", "eot_token"])
      if (cfg[k] !== undefined && typeof cfg[k] !== "string")
        throw new InputError(`${cfgFile}: ${k} is ${JSON.stringify(cfg[k]).slice(0, 60)}; expected a string`);
    if (typeof cfg.eot_token === "string" && !t.special.has(cfg.eot_token))
      throw new InputError(
        `${cfgFile}: eot_token ${JSON.stringify(cfg.eot_token)} is not one of the added tokens in ${file}`,
      );
    t.config = cfg;
    t.addedBos = addedBosId(t, (j as Record<string, any>).post_processor);
    return t;
  }

  /** A parsed tokenizer.json: ours on the fast path, another BPE file through its own pipeline (hf_load.ts). */
  static fromJSON(j: unknown, where = "tokenizer.json", hash = ""): Tokenizer {
    const spec = readSpec(j, where);
    try {
      return new Tokenizer(spec, hash);
    } catch (e) {
      if (e instanceof InputError) throw new InputError(`${where}: ${e.message}`);
      throw e;
    }
  }
}

/**
 * The bos id `t` (its tokenizer_config.json) adds before a text as transformers does: add_bos_token
 * true, or, when that is unset, tokenizer.json's post-processor (`post`) starting with the bos; else null.
 */
export function addedBosId(t: Tokenizer, post: any): number | null {
  const cfg = t.config;
  const bos = tokenContent(cfg.bos_token);
  const id = bos === undefined ? undefined : t.tokenToId(bos);
  if (id === undefined) return null;
  if (cfg.add_bos_token === true) return id;
  if (cfg.add_bos_token === false) return null;
  const procs = post?.type === "Sequence" ? (post.processors ?? []) : [post];
  const first = procs.find((x: any) => x?.type === "TemplateProcessing")?.single?.[0]?.SpecialToken?.id;
  return first === bos ? id : null;
}
