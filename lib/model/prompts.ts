// What generate completes: one --prompt text, --prompt-ids, or a --prompts JSONL file whose rows are
// {"prompt": text}, {"prompt_ids": [...]} or {"messages": [{"role", "content"}, ...]}; a row's other
// fields come back with its completion. A conversation (a messages row, or a text prompt under
// --chat, which becomes one user turn) is rendered through the tokenizer's chat template with the
// generation prompt, as transformers' apply_chat_template renders it; --system puts a system turn
// first. Every id is checked against the model's vocabulary before anything runs.
import { InputError } from "../base/errors.ts";
import { lines, parseJsonLine } from "../io/readers.ts";
import { chatText, parseMessages, type Message } from "../tokenizer/chat_template.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";

export interface PromptIn {
  /** the text prompt (null: given as ids, or as messages) */
  prompt: string | null;
  /** the conversation the ids render, --system's turn included (null: not a chat) */
  messages: Message[] | null;
  ids: number[];
  /** the row's other fields */
  extra: Record<string, unknown>;
}

export interface PromptSource {
  prompt?: string;
  promptIds?: string;
  /** a JSONL file */
  prompts?: string;
  /** text prompts become a user turn */
  chat?: boolean;
  /** a system turn before each conversation */
  system?: string;
  /** replace invalid UTF-8 in the prompts file with U+FFFD instead of refusing it */
  lossy?: boolean;
}

export function parseIds(s: string, where: string): number[] {
  const ids = s
    .split(",")
    .map((x) => x.trim())
    .filter(Boolean)
    .map(Number);
  if (!ids.length || ids.some((x) => !Number.isInteger(x) || x < 0))
    throw new InputError(`${where}: expected comma-separated token ids, got "${s}"`);
  return ids;
}

function _needTokenizer(tok: Tokenizer | null, what: string): Tokenizer {
  if (!tok) throw new InputError(`${what} need a tokenizer: give --tokenizer DIR`);
  return tok;
}

/** The conversation a row renders: --system first, where the row has no system turn of its own. */
function _conversation(messages: Message[], system: string | undefined, where: string): Message[] {
  if (system === undefined) return messages;
  if (messages.some((m) => m.role === "system"))
    throw new InputError(`${where}: the row has a system message of its own; leave --system out or remove it`);
  return [{ role: "system", content: system }, ...messages];
}

function _chatPrompt(tok: Tokenizer, messages: Message[], extra: Record<string, unknown>): PromptIn {
  return { prompt: null, messages, ids: tok.encode(chatText(tok, messages, true)), extra };
}

function _textPrompt(
  tok: Tokenizer | null,
  text: string,
  src: PromptSource,
  where: string,
  extra: Record<string, unknown>,
): PromptIn {
  const t = _needTokenizer(tok, "text prompts");
  if (!src.chat) {
    if (src.system !== undefined)
      throw new InputError(`${where}: --system applies to conversations: add --chat, or give {"messages": [...]} rows`);
    return { prompt: text, messages: null, ids: t.encode(text), extra };
  }
  const p = _chatPrompt(t, _conversation([{ role: "user", content: text }], src.system, where), extra);
  return { ...p, prompt: text };
}

async function* _rows(src: PromptSource, tok: Tokenizer | null): AsyncGenerator<PromptIn> {
  if (src.prompt !== undefined) {
    yield _textPrompt(tok, src.prompt, src, "--prompt", {});
    return;
  }
  if (src.promptIds !== undefined) {
    yield { prompt: null, messages: null, ids: parseIds(src.promptIds, "--prompt-ids"), extra: {} };
    return;
  }
  const file = src.prompts!;
  let index = 0;
  for await (const line of lines(file, { lossy: src.lossy ? { replaced: 0 } : undefined })) {
    index++;
    if (!line.trim()) continue;
    const where = `${file}:${index}`;
    const row = parseJsonLine(line, file, index);
    if (row === null || typeof row !== "object" || Array.isArray(row))
      throw new InputError(`${where}: expected a JSON object, got ${JSON.stringify(row).slice(0, 60)}`);
    const { prompt, prompt_ids, messages, ...extra } = row as Record<string, unknown>;
    if (messages !== undefined) {
      const t = _needTokenizer(tok, `${where}: messages`);
      yield _chatPrompt(t, _conversation(parseMessages(messages, where), src.system, where), extra);
    } else if (typeof prompt === "string") yield _textPrompt(tok, prompt, src, where, extra);
    else if (Array.isArray(prompt_ids)) {
      if (src.system !== undefined)
        throw new InputError(`${where}: --system applies to conversations, not to "prompt_ids" rows`);
      yield { prompt: null, messages: null, ids: parseIds(prompt_ids.join(","), where), extra };
    } else throw new InputError(`${where}: expected {"prompt": text}, {"prompt_ids": [...]} or {"messages": [...]}`);
  }
}

/** The flag combinations that cannot work, refused before the model loads. */
export function checkPromptSource(src: PromptSource, tok: Tokenizer | null): void {
  const given = [src.prompt, src.promptIds, src.prompts].filter((x) => x !== undefined).length;
  if (given !== 1) throw new InputError("give exactly one of --prompt, --prompt-ids, --prompts");
  if (!tok && (src.prompt !== undefined || src.chat)) _needTokenizer(tok, "--prompt and --chat");
  if (src.system !== undefined && src.promptIds !== undefined)
    throw new InputError("--system applies to conversations, not to --prompt-ids");
  if (src.system !== undefined && src.prompt !== undefined && !src.chat)
    throw new InputError("--system applies to conversations: add --chat");
}

/** Every prompt of `src`, as ids below `vocabSize`. */
export async function readPrompts(src: PromptSource, tok: Tokenizer | null, vocabSize: number): Promise<PromptIn[]> {
  checkPromptSource(src, tok);
  const out: PromptIn[] = [];
  for await (const p of _rows(src, tok)) {
    const bad = p.ids.find((x) => x >= vocabSize);
    if (bad !== undefined)
      throw new InputError(`prompt token id ${bad} is outside the model's vocabulary (${vocabSize})`);
    out.push(p);
  }
  return out;
}
