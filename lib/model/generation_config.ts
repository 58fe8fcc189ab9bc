// generation_config.json: the file transformers' `generate` reads beside config.json for its
// defaults, above all the tokens that end a completion. A chat model answers and then says
// <|im_end|>; config.json names one eos id (<|endoftext|>), so without this file transformers keeps
// sampling past the end of the turn. Written into every training checkpoint; read by generate and
// chat here from any checkpoint that has one (a Hugging Face model's too).
// Field names and layout as transformers' GenerationConfig.to_json_file writes them (sorted keys).
import { existsSync } from "node:fs";
import { join } from "node:path";
import { InputError } from "../base/errors.ts";
import { readJsonObject } from "../io/files.ts";
import type { SpecialIds } from "../tokenizer/special_ids.ts";
import { verifyRecorded } from "./checkpoint.ts";
import type { ModelConfig } from "./config.ts";

export const GENERATION_CONFIG = "generation_config.json";

/**
 * The end-of-text and end-of-turn tokens of bunlm's tokenizers (hf_json.ts) and of the families'
 * (Llama 3, Gemma, DeepSeek), whichever the tokenizer has; the model's own eos after.
 */
const _EOS_TOKENS = [
  "<|endoftext|>",
  "<|im_end|>",
  "<|end_of_text|>",
  "<|eot_id|>",
  "<end_of_turn>",
  "<\uff5cend\u2581of\u2581sentence\uff5c>",
];

/**
 * The generation_config.json of a model: the sampling defaults of `base` (the file of the model a run
 * started from: Qwen's temperature, top_p, repetition_penalty…) kept as they were, and eos_token_id lists <|endoftext|> and <|im_end|> when the
 * tokenizer has them, then config.json's eos ids; bos and pad come from config.json, else from
 * tokenizer_config.json's bos_token and pad_token. An id nobody knows is left out.
 */
export function generationConfigJson(
  c: ModelConfig,
  s: SpecialIds | null,
  base: Record<string, unknown> = {},
): Record<string, unknown> {
  const eos: number[] = [];
  for (const id of [..._EOS_TOKENS.map((t) => s?.added.get(t)), s?.eos, ...c.eos_token_id])
    if (id !== undefined && !eos.includes(id)) eos.push(id);
  const bos = c.bos_token_id ?? s?.bos,
    pad = c.pad_token_id ?? s?.pad;
  const { bos_token_id: _b, eos_token_id: _e, pad_token_id: _p, _from_model_config: _f, ...defaults } = base;
  return {
    ...defaults,
    // true would mark it as derived from config.json, which transformers may rebuild from config.json
    // at generate time, dropping <|im_end|>
    _from_model_config: false,
    ...(bos !== undefined ? { bos_token_id: bos } : {}),
    ...(eos.length ? { eos_token_id: eos } : {}),
    ...(pad !== undefined ? { pad_token_id: pad } : {}),
  };
}

const _isId = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) >= 0;

/**
 * The eos ids of dir/generation_config.json ([] when it has none), checked against the size and
 * CRC-32 a training checkpoint's meta.json recorded; null when there is no such file.
 */
export function readGenerationEos(dir: string): number[] | null {
  const file = join(dir, GENERATION_CONFIG);
  if (!existsSync(file)) return null;
  verifyRecorded(dir, [GENERATION_CONFIG]);
  const e = readJsonObject(file).eos_token_id;
  if (e === undefined || e === null) return [];
  const ids = Array.isArray(e) ? e : [e];
  if (!ids.every(_isId))
    throw new InputError(
      `${file}: eos_token_id is ${JSON.stringify(e).slice(0, 60)}; expected a token id or a list of token ids`,
    );
  return ids;
}

/**
 * dir/generation_config.json as an object: {} when there is none, or when it cannot be read (a save
 * must not fail for the defaults of the model a run started from).
 */
export function readGenerationDefaults(dir: string): Record<string, unknown> {
  const file = join(dir, GENERATION_CONFIG);
  if (!existsSync(file)) return {};
  try {
    verifyRecorded(dir, [GENERATION_CONFIG]);
    return readJsonObject(file);
  } catch {
    return {};
  }
}
