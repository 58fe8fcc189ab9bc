// Training (encodeChat, what `pack sft` stores) and generation (chatText, what `generate` and `chat`
// feed the model) render a conversation through the same template with the same variables: a
// template that writes bos_token would otherwise train on one text and prompt with another.
import { beforeAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chatText, encodeChat } from "../../lib/tokenizer/chat_template.ts";
import { Tokenizer } from "../../lib/tokenizer/tokenizer.ts";
import { trainTokenizer } from "../../lib/tokenizer/train.ts";
import { readDocs } from "../../lib/io/readers.ts";

let tok: Tokenizer;
beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), "bunlm-chattpl-"));
  const corpus = join(import.meta.dir, "..", "..", "examples", "data", "bilingual.txt");
  await trainTokenizer(readDocs([corpus], { lines: true }), dir, { vocabSize: 500, minFrequency: 1 });
  tok = Tokenizer.fromJSON(JSON.parse(readFileSync(join(dir, "tokenizer.json"), "utf8")));
  // a Llama-style template: the conversation opens with bos_token, each assistant turn closes with eos_token
  tok.config = {
    bos_token: "<|endoftext|>",
    eos_token: { content: "<|im_end|>" },
    eot_token: "<|im_end|>",
    chat_template:
      "{{ bos_token }}{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}{% if m.role == 'assistant' %}{{ eos_token }}{% else %}<|im_end|>{% endif %}\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
  };
});

test("encodeChat and chatText render bos_token and eos_token alike", () => {
  const messages = [
    { role: "user" as const, content: "hi" },
    { role: "assistant" as const, content: "hello" },
    { role: "user" as const, content: "more" },
  ];
  const text = chatText(tok, messages, true);
  expect(text).toBe(
    // the newline after a block tag is trimmed, as transformers renders (trim_blocks)
    "<|endoftext|><|im_start|>user\nhi<|im_end|><|im_start|>assistant\nhello<|im_end|><|im_start|>user\nmore<|im_end|><|im_start|>assistant\n",
  );
  expect(encodeChat(tok, messages, true).ids).toEqual(tok.encode(text));
  // the trained tokens are the assistant's content and its end-of-turn token, nothing of bos_token
  const e = encodeChat(tok, messages.slice(0, 2));
  const trained = e.ids.filter((_, i) => e.assistantMask[i] === 1);
  expect(tok.decode(trained)).toBe("hello<|im_end|>");
});
