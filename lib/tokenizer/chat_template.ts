// Chat formatting: a ChatML Jinja template stored in tokenizer_config.json (as transformers does, so
// `tokenizer.apply_chat_template` renders the same text), rendered here with @huggingface/jinja.
// For SFT, a conversation becomes ids plus, per token, the index of the message it belongs to and a
// mask that is 1 exactly on the assistant's reply tokens and their end-of-turn token.
import { Template } from "@huggingface/jinja";
import { InputError } from "../base/errors.ts";
import type { Tokenizer } from "./tokenizer.ts";
import { tokenContent } from "./special_ids.ts";

export const CHATML_TEMPLATE =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

export const ROLES = ["system", "user", "assistant", "tool"] as const;
export type Role = (typeof ROLES)[number];

export interface Message {
  role: Role;
  content: string;
}

export interface ChatEncoding {
  ids: number[];
  /** per token: index of the message it came from (-1 for a trailing generation prompt) */
  message: number[];
  /** per token: 1 on assistant content and its end-of-turn token, else 0 */
  assistantMask: number[];
}

const compiled = new Map<string, Template>();

export function renderChat(
  template: string,
  messages: Message[],
  addGenerationPrompt = false,
  extra: Record<string, unknown> = {},
): string {
  let t = compiled.get(template);
  if (!t) compiled.set(template, (t = new Template(template)));
  return t.render({ messages, add_generation_prompt: addGenerationPrompt, ...extra });
}

/**
 * The text of `messages` as the tokenizer's template renders it (transformers' apply_chat_template
 * with the same flag): templates that write bos_token or eos_token get the tokenizer's.
 */
export function chatText(tok: Tokenizer, messages: Message[], addGenerationPrompt = true): string {
  return renderChat(tok.config.chat_template ?? CHATML_TEMPLATE, messages, addGenerationPrompt, _templateTokens(tok));
}

/** bos_token and eos_token for a template, so training (encodeChat) and generation render alike. */
function _templateTokens(tok: Tokenizer): Record<string, unknown> {
  const extra: Record<string, unknown> = {};
  for (const k of ["bos_token", "eos_token"]) {
    const t = tokenContent(tok.config[k]);
    if (t !== undefined) extra[k] = t;
  }
  return extra;
}

const _eot = new WeakMap<Tokenizer, string>();

/**
 * The text of the token that ends a turn: tokenizer_config.json's eot_token (bunlm writes one), else
 * the added token the template writes right after an assistant's reply (<|eot_id|> for Llama 3,
 * <end_of_turn> for Gemma, <|im_end|> for Qwen), else <|im_end|>.
 */
export function endOfTurn(tok: Tokenizer): string {
  if (typeof tok.config.eot_token === "string") return tok.config.eot_token;
  let eot = _eot.get(tok);
  if (eot !== undefined) return eot;
  eot = "<|im_end|>";
  const probe = "\u0002reply\u0002";
  try {
    const text = renderChat(
      tok.config.chat_template ?? CHATML_TEMPLATE,
      [
        { role: "user", content: "hi" },
        { role: "assistant", content: probe },
      ],
      false,
      _templateTokens(tok),
    );
    const rest = text.slice(text.indexOf(probe) + probe.length).trimStart();
    const hit = tok.specials
      .filter((s) => rest.startsWith(s.content))
      .sort((a, b) => b.content.length - a.content.length)[0];
    if (text.includes(probe) && hit) eot = hit.content;
  } catch {
    // a template that refuses this conversation keeps the default
  }
  _eot.set(tok, eot);
  return eot;
}

/** The id of the token that ends a turn (endOfTurn), if the tokenizer has it. */
export function eotId(tok: Tokenizer): number | undefined {
  return tok.tokenToId(endOfTurn(tok));
}

/** `x` as a conversation (a JSON row's "messages"): objects of a known role and string content. */
export function parseMessages(x: unknown, where: string): Message[] {
  if (!Array.isArray(x) || x.length === 0)
    throw new InputError(`${where}: "messages" must be a non-empty list of {"role", "content"} objects`);
  return x.map((m, i) => {
    const role = m?.role,
      content = m?.content;
    if (!ROLES.includes(role))
      throw new InputError(
        `${where}: messages[${i}].role is ${JSON.stringify(role)?.slice(0, 40) ?? "missing"}; expected one of ${ROLES.join(", ")}`,
      );
    if (typeof content !== "string")
      throw new InputError(
        `${where}: messages[${i}].content is ${content === undefined ? "missing" : typeof content}; expected text`,
      );
    return { role, content };
  });
}

/**
 * Encode a conversation. Each message's text is the difference between rendering the first i+1 and
 * the first i messages, so any template that renders messages in order works; within an assistant
 * message, the tokens from its content up to and including the end-of-turn token are the trained ones.
 */
export function encodeChat(tok: Tokenizer, messages: Message[], addGenerationPrompt = false): ChatEncoding {
  const template: string = tok.config.chat_template ?? CHATML_TEMPLATE;
  const eot = endOfTurn(tok);
  const extra = _templateTokens(tok);
  const ids: number[] = [],
    message: number[] = [],
    assistantMask: number[] = [];
  let prev = "";
  const push = (text: string, msg: number, train: boolean) => {
    const n0 = ids.length;
    tok.encode(text, ids);
    for (let i = n0; i < ids.length; i++) {
      message.push(msg);
      assistantMask.push(train ? 1 : 0);
    }
  };
  for (let i = 0; i <= messages.length; i++) {
    const last = i === messages.length;
    if (last && !addGenerationPrompt) break;
    const full = renderChat(template, messages.slice(0, last ? i : i + 1), last, extra);
    if (!full.startsWith(prev)) throw new Error("chat template does not render messages in order (prefix changed)");
    const seg = full.slice(prev.length);
    prev = full;
    if (last) {
      push(seg, -1, false);
      break;
    }
    const m = messages[i]!;
    if (m.role !== "assistant") {
      push(seg, i, false);
      continue;
    }
    // header | content + end-of-turn | the rest (newline)
    const c = seg.indexOf(m.content);
    const e = seg.indexOf(eot, c + m.content.length);
    if (c < 0 || e < 0) {
      push(seg, i, true);
      continue;
    }
    push(seg.slice(0, c), i, false);
    push(seg.slice(c, e + eot.length), i, true);
    push(seg.slice(e + eot.length), i, false);
  }
  return { ids, message, assistantMask };
}
