// The tokenizer: byte-level BPE encode/decode over a Hugging Face tokenizer.json.
// encode: split on special tokens → NFC (or the file's normal form) → pre-tokenize (pretokenize.ts) →
// UTF-8 bytes → byte tokens → merges by rank (lowest first, leftmost on ties: what HF's BPE model
// does), with a cache per piece.
// decode: token strings → bytes → UTF-8 (invalid sequences become U+FFFD, as HF's ByteLevel decoder does).
// Loading refuses any tokenizer.json setting this pipeline does not run (hf_load.ts).
import { statSync } from "node:fs";
import { join } from "node:path";
import { createHash } from "node:crypto";
import { BYTE_TO_CHAR, CHAR_TO_BYTE } from "./bytes.ts";
import { splitPieces, SpecialSplitter } from "./pretokenize.ts";
import { specFromJson } from "./hf_load.ts";
import { InputError } from "../base/errors.ts";
import { readJson, readJsonObject, readRegular } from "../io/files.ts";

const SHIFT = 1048576;
const CACHE_MAX = 1 << 18;

export interface SpecialToken {
  id: number;
  content: string;
}

export type NormalForm = "NFC" | "NFD" | "NFKC" | "NFKD";

export interface TokenizerSpec {
  /** id → token string (byte-level characters for BPE tokens, the literal text for special tokens) */
  vocab: string[];
  merges: [string, string][];
  specials: SpecialToken[];
  /** Unicode normalization before pre-tokenizing; null: none. Default NFC, what `tokenize train` writes. */
  normalizer?: NormalForm | null;
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
  config: Record<string, any> = {};

  constructor(spec: TokenizerSpec, hash = "") {
    this.vocab = spec.vocab;
    this.specials = spec.specials;
    this.form = spec.normalizer === undefined ? "NFC" : spec.normalizer;
    spec.vocab.forEach((t, id) => this.ids.set(t, id));
    for (const s of spec.specials) {
      this.special.set(s.content, s.id);
      this.specialIds.add(s.id);
      this.ids.set(s.content, s.id);
    }
    for (let b = 0; b < 256; b++) {
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
    this.splitter = new SpecialSplitter(this.special);
    this.hash = hash;
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
    if (this.cache.size >= CACHE_MAX) this.cache.clear();
    this.cache.set(piece, syms);
    for (const id of syms) out.push(id);
  }

  /** Plain text (no special tokens) → ids. */
  encodeOrdinary(text: string, out: number[] = []): number[] {
    const pieces = splitPieces(this.form ? text.normalize(this.form) : text);
    for (const p of pieces) this.encodePiece(p, out);
    return out;
  }

  /** Text → ids; special-token strings in the text become their ids (as HF's encode does). */
  encode(text: string, out: number[] = []): number[] {
    for (const [seg, sid] of this.splitter.split(text)) {
      if (sid >= 0) out.push(sid);
      else this.encodeOrdinary(seg, out);
    }
    return out;
  }

  decodeBytes(ids: ArrayLike<number>, skipSpecial = false): Uint8Array {
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
    for (const k of ["chat_template", "eot_token"])
      if (cfg[k] !== undefined && typeof cfg[k] !== "string")
        throw new InputError(`${cfgFile}: ${k} is ${JSON.stringify(cfg[k]).slice(0, 60)}; expected a string`);
    if (typeof cfg.eot_token === "string" && !t.special.has(cfg.eot_token))
      throw new InputError(
        `${cfgFile}: eot_token ${JSON.stringify(cfg.eot_token)} is not one of the added tokens in ${file}`,
      );
    t.config = cfg;
    return t;
  }

  /** A parsed tokenizer.json; settings our encoder does not implement are refused (hf_load.ts). */
  static fromJSON(j: unknown, where = "tokenizer.json", hash = ""): Tokenizer {
    const spec = specFromJson(j, where);
    try {
      return new Tokenizer(spec, hash);
    } catch (e) {
      if (e instanceof InputError) throw new InputError(`${where}: ${e.message}`);
      throw e;
    }
  }
}
