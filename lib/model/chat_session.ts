// A multi-turn chat that keeps the KV cache across turns. The cache holds the conversation as the
// model read it: the rendered turns so far and the model's own answer tokens, its end-of-turn token
// included. A new turn renders the whole conversation through the tokenizer's chat template and
// reads only the text past what was read before (the template's glue after the answer, the user's
// turn and the assistant's header), so each turn costs its own tokens, not the conversation's.
// Answers are kept as the ids the model sampled, not re-encoded from their text (BPE of the text
// can split differently), so the cache holds exactly what generating from scratch on the same ids
// reads. A template that renders earlier turns differently once later ones follow breaks the prefix:
// that turn starts over from an empty cache (cached_tokens 0), which is still correct, only slower.
// The conversation ends when it fills the model's context (max_position_embeddings) rather than
// dropping old turns: that would move every later token's position (the whole cache recomputed) and
// answer without what the user said before, silently.
import type { Rng } from "../base/rng.ts";
import { chatText, type Message } from "../tokenizer/chat_template.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import type { ModelConfig } from "./config.ts";
import { DecodeState } from "./generate.ts";
import type { ModelParams } from "./params.ts";
import type { SampleOpts } from "./sample.ts";

export interface ChatTurn {
  turn: number;
  user: string;
  /** the answer, without its end token */
  text: string;
  /** the sampled ids, the end token included */
  ids: number[];
  finish: "stop" | "length";
  /** tokens read for this turn before the answer: what the cache did not hold */
  promptTokens: number;
  /** tokens of the conversation read from the cache, not again */
  cachedTokens: number;
  /** the conversation's length after the answer */
  contextTokens: number;
  seconds: number;
}

export interface TurnOpts extends SampleOpts {
  maxNewTokens: number;
  onToken?: (id: number) => void;
}

export class ChatSession {
  private messages: Message[] = [];
  /** the text the read tokens stand for (the answers as their decoded ids, end tokens included) */
  private rendered = "";
  private turns = 0;

  private constructor(
    private config: ModelConfig,
    private params: ModelParams,
    private tok: Tokenizer,
    private state: DecodeState,
    private rng: Rng,
    readonly stop: number[],
    system: string | undefined,
  ) {
    if (system !== undefined) this.messages.push({ role: "system", content: system });
  }

  /** stop: the ids that end an answer (completion.ts's stopIds for a chat); rng: one stream for every turn */
  static async open(
    c: ModelConfig,
    p: ModelParams,
    tok: Tokenizer,
    o: { system?: string; rng: Rng; stop: number[]; capacity?: number },
  ): Promise<ChatSession> {
    const state = await DecodeState.open(c, p, { capacity: o.capacity });
    return new ChatSession(c, p, tok, state, o.rng, o.stop, o.system);
  }

  /**
   * Answer `user`. Returns a one-line reason instead when the model's context has no room left for
   * this turn and at least one answer token.
   */
  async say(user: string, o: TurnOpts): Promise<ChatTurn | { full: string }> {
    const tok = this.tok;
    const messages: Message[] = [...this.messages, { role: "user", content: user }];
    const text = chatText(tok, messages, true);
    if (!text.startsWith(this.rendered)) {
      const capacity = this.state.length;
      this.state.dispose();
      this.state = await DecodeState.open(this.config, this.params, { capacity });
      this.rendered = "";
    }
    const before = this.state.length;
    const prompt = tok.encode(text.slice(this.rendered.length));
    const max = this.config.max_position_embeddings;
    const room = max - before - prompt.length;
    if (room < 1)
      return {
        full: `the conversation (${before} tokens) and the next turn (${prompt.length}) leave no room in the model's context of ${max} tokens (max_position_embeddings); the chat ends here`,
      };
    // counted from the cache itself: a token sampled but never read would be read with this prompt
    const cached = this.state.ids.length;
    const g = await this.state.generate(prompt, {
      ...o,
      maxNewTokens: Math.min(o.maxNewTokens, room),
      seed: 0,
      rng: this.rng,
      stop: this.stop,
    });
    // the answer's last token (its end token) is read now, so the next turn reads only its own tokens
    await this.state.flush();
    const stop = new Set(this.stop);
    const answer = tok.decode(
      g.ids.filter((id) => !stop.has(id)),
      true,
    );
    this.rendered = text + tok.decode(g.ids);
    this.messages = [...messages, { role: "assistant", content: answer }];
    return {
      turn: ++this.turns,
      user,
      text: answer,
      ids: g.ids,
      finish: g.finish,
      promptTokens: before + prompt.length - cached,
      cachedTokens: cached,
      contextTokens: this.state.length,
      seconds: g.seconds,
    };
  }

  dispose(): void {
    this.state.dispose();
  }
}

/** The JSON line of a turn, with generate's field names (finish_reason, tokens_per_s). */
export function turnRow(t: ChatTurn): Record<string, unknown> {
  return {
    turn: t.turn,
    user: t.user,
    text: t.text,
    ids: t.ids,
    finish_reason: t.finish,
    prompt_tokens: t.promptTokens,
    cached_tokens: t.cachedTokens,
    context_tokens: t.contextTokens,
    tokens_per_s: +(t.ids.length / t.seconds).toFixed(2),
  };
}
