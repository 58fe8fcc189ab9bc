// Writing a trained tokenizer as Hugging Face files: tokenizer.json (loads in the `tokenizers`
// library, transformers' PreTrainedTokenizerFast and transformers.js, with the same ids) and
// tokenizer_config.json (special tokens and the chat template, read by transformers).
import { SPLIT_PATTERN } from "./pretokenize.ts";
import { bytesToTokenString } from "./bytes.ts";
import { CHATML_TEMPLATE } from "./chat_template.ts";
import type { TrainResult } from "./bpe_train.ts";

export const EOS = "<|endoftext|>";
export const PAD = "<|pad|>";
export const IM_START = "<|im_start|>";
export const IM_END = "<|im_end|>";
export const RESERVED = 4;

/** The special tokens every tokenizer has, then the user's, then reserved ones for later use. */
export function specialTokens(extra: string[]): string[] {
  const base = [EOS, PAD, IM_START, IM_END];
  const out = [...base];
  for (const s of extra) if (!out.includes(s)) out.push(s);
  for (let i = 0; i < RESERVED; i++) out.push(`<|reserved_${i}|>`);
  return out;
}

export function buildTokenizerJson(r: TrainResult, specials: string[]): any {
  const vocab: Record<string, number> = {};
  r.tokens.forEach((t, id) => (vocab[bytesToTokenString(t)] = id));
  const first = r.tokens.length;
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: specials.map((content, i) => ({
      id: first + i,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: { type: "NFC" },
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [
        { type: "Split", pattern: { Regex: SPLIT_PATTERN }, behavior: "Isolated", invert: false },
        { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: null,
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      // "left right" strings: byte-level tokens never contain a space, and every HF version reads this form
      merges: r.merges.map(([a, b]) => `${bytesToTokenString(r.tokens[a]!)} ${bytesToTokenString(r.tokens[b]!)}`),
    },
  };
}

export function buildTokenizerConfig(firstSpecialId: number, specials: string[]): any {
  const decoder: Record<string, unknown> = {};
  specials.forEach((content, i) => {
    decoder[String(firstSpecialId + i)] = {
      content,
      lstrip: false,
      normalized: false,
      rstrip: false,
      single_word: false,
      special: true,
    };
  });
  return {
    tokenizer_class: "PreTrainedTokenizerFast",
    bos_token: EOS,
    eos_token: EOS,
    pad_token: PAD,
    unk_token: null,
    eot_token: IM_END,
    additional_special_tokens: [IM_START, IM_END],
    clean_up_tokenization_spaces: false,
    // transformers' VERY_LARGE_INTEGER (int(1e30)), written as it writes it; the digits past 2^53 are its own
    // biome-ignore lint/correctness/noPrecisionLoss: the literal is the value transformers writes, not a computation
    model_max_length: 1000000000000000019884624838656,
    added_tokens_decoder: decoder,
    chat_template: CHATML_TEMPLATE,
  };
}
