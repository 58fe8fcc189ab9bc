// Which token plays which part, for any tokenizer: ours names them <|endoftext|>, <|pad|> and
// <|im_end|>; a Hugging Face tokenizer names its own (Llama 3: <|end_of_text|>, <|eot_id|>; Qwen:
// <|endoftext|>, <|im_end|>; Llama 2 and Mistral: </s>), and tokenizer_config.json says which is
// eos and pad. Packing, GRPO's stops and generation read the parts from here, never a literal.
import { endOfTurn } from "./chat_template.ts";
import type { Tokenizer } from "./tokenizer.ts";
import { tokenContent } from "./special_ids.ts";

export interface TokenRoles {
  /** ends a document: what pack puts between documents and after a completion */
  docEnd: number;
  /** fills rows (never trained on) */
  pad: number;
  /** ends a chat turn */
  turnEnd: number;
}

function firstId(tok: Tokenizer, names: (string | undefined)[]): number | undefined {
  for (const n of names) {
    const id = n === undefined ? undefined : tok.tokenToId(n);
    if (id !== undefined) return id;
  }
  return undefined;
}

/** The roles of `tok`'s special tokens; `where` names the tokenizer when one is missing. */
export function tokenRoles(tok: Tokenizer, where = "tokenizer"): TokenRoles {
  const eos = tokenContent(tok.config.eos_token);
  // a base model's document end comes before an instruct tokenizer's eos (often the end of a turn)
  const docEnd = firstId(tok, ["<|endoftext|>", "<|end_of_text|>", "<eos>", eos, "</s>", "<｜end▁of▁sentence｜>"]);
  if (docEnd === undefined)
    throw new Error(`${where} has no end-of-document token (<|endoftext|>, <|end_of_text|>, </s> or an eos_token)`);
  // the token the chat template writes after a reply (chat_template.ts reads it from the template)
  const turnEnd = firstId(tok, [endOfTurn(tok), eos]) ?? docEnd;
  const pad = firstId(tok, ["<|pad|>", tokenContent(tok.config.pad_token)]) ?? docEnd;
  return { docEnd, pad, turnEnd };
}
