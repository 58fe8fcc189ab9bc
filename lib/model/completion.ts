// What generate prints for a completion, and the tokens that end one. A completion stops at the
// model's eos ids (config.json), at generation_config.json's when the checkpoint has that file (as
// transformers' generate does: a chat model's <|im_end|> is listed there), at <|endoftext|>, and for
// a conversation at the token that ends a turn. The stop token itself stays in "ids" and out of "text".
import { InputError } from "../base/errors.ts";
import { tokenRoles } from "../tokenizer/roles.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import type { ModelConfig } from "./config.ts";
import { NonFiniteLogitsError, type Generation } from "./generate.ts";
import { cacheBytesPerToken } from "./latent_cache.ts";
import type { PromptIn } from "./prompts.ts";

/** The ids that end a completion: config.json's and generation_config.json's eos, <|endoftext|>, and for a chat the end-of-turn token. */
export function stopIds(
  c: ModelConfig,
  generationEos: number[] | null,
  tok: Tokenizer | null,
  chat: boolean,
): number[] {
  const stop = new Set<number>([...c.eos_token_id, ...(generationEos ?? [])]);
  const add = (id: number | undefined) => id !== undefined && stop.add(id);
  if (tok) {
    const roles = tokenRoles(tok);
    add(roles.docEnd);
    if (chat) add(roles.turnEnd);
  }
  return [...stop];
}

/** Bytes the cache holds per token over all layers (0 without a cache); latent attention also gives what it stands for. */
function _cacheBytes(c: ModelConfig, useCache: boolean): Record<string, number> {
  if (c.attn_type === "mla") {
    const b = cacheBytesPerToken(c);
    return { kv_cache_bytes_per_token: useCache ? b.latent : 0, kv_cache_bytes_per_token_expanded: b.expanded };
  }
  const kv = 2 * c.num_hidden_layers * c.num_key_value_heads * c.head_dim * 4;
  return { kv_cache_bytes_per_token: useCache ? kv : 0 };
}

export interface RowOpts {
  config: ModelConfig;
  tok: Tokenizer | null;
  stop: number[];
  useCache: boolean;
  logprobs: boolean;
  /** leave "text" out (it was shown already, streamed on the terminal stdout is) */
  omitText?: boolean;
}

/** The JSON line of one completion: the row's own fields, the prompt, the text and ids, and how it went. */
export function completionRow(p: PromptIn, g: Generation, o: RowOpts): Record<string, unknown> {
  const out: Record<string, unknown> = { ...p.extra };
  if (p.messages && p.prompt === null) out.messages = p.messages;
  else out.prompt = p.prompt ?? p.ids;
  const stop = new Set(o.stop);
  if (o.tok && !o.omitText)
    out.text = o.tok.decode(
      g.ids.filter((id) => !stop.has(id)),
      true,
    );
  out.ids = g.ids;
  out.finish_reason = g.finish;
  out.tokens_per_s = +(g.ids.length / g.seconds).toFixed(2);
  Object.assign(out, _cacheBytes(o.config, o.useCache));
  if (o.logprobs) out.logprobs = g.logprobs.map((x) => +x.toFixed(6));
  return out;
}

/** A generation that failed because the weights are broken, as the one line a user can act on; other errors as they are. */
export function generationFailure(e: unknown, ckpt: string, where = ""): unknown {
  if (!(e instanceof NonFiniteLogitsError)) return e;
  return new InputError(
    `${ckpt}: ${e.message}${where}; its weights are broken (bun cmd/ckpt-inspect.ts ${ckpt} --stats shows each tensor's range and non-finite values)`,
  );
}
