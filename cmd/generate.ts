// bun cmd/generate.ts --ckpt DIR [--tokenizer DIR] (--prompt TEXT | --prompt-ids 1,2,3 | --prompts FILE.jsonl)
//                     [--chat] [--system TEXT] [--max-new-tokens N] [--temperature T] [--top-k K] [--top-p P]
//                     [--seed S] [--logprobs]
// DIR is any directory with config.json + model.safetensors in Hugging Face Llama layout (ours, or one
// saved by transformers). Prints one JSON line per completion. On a terminal the text streams as it is
// sampled, once: into stdout, whose JSON line then leaves "text" out, or, when stdout is a pipe, into
// stderr; control characters show escaped. --prompts rows may be conversations ({"messages": [...]}).
import { defineCommand } from "citty";
import { initGpu } from "../lib/gpu/index.ts";
import { loadModel } from "../lib/model/checkpoint.ts";
import { checkpointTokenizer, checkTokenizerFits } from "../lib/model/checkpoint_tokenizer.ts";
import { completionRow, generationFailure, stopIds } from "../lib/model/completion.ts";
import { generate } from "../lib/model/generate.ts";
import { readGenerationEos } from "../lib/model/generation_config.ts";
import { checkPromptSource, readPrompts } from "../lib/model/prompts.ts";
import { TextStream, visible } from "../lib/tokenizer/text_stream.ts";
import { clearStatus, statusVisible } from "../lib/base/log.ts";
import { samplingFlags } from "../lib/model/sampling_flags.ts";
import { runCli } from "./_cli.ts";

export const command = defineCommand({
  meta: { name: "generate", description: "Generate text from a checkpoint (KV cache, sampling, chat template)" },
  args: {
    ckpt: { type: "string", required: true, description: "directory with config.json + model.safetensors" },
    tokenizer: { type: "string", description: "tokenizer directory (unset: the checkpoint's own tokenizer.json)" },
    prompt: { type: "string", description: "prompt text" },
    "prompt-ids": { type: "string", description: "prompt as comma-separated token ids (no tokenizer needed)" },
    prompts: {
      type: "string",
      description: 'JSONL of {"prompt": text}, {"prompt_ids": [...]} or {"messages": [...]}, one completion each',
    },
    chat: {
      type: "boolean",
      default: false,
      description: "a text prompt is a user turn, through the chat template; <|im_end|> ends it",
    },
    system: { type: "string", description: "a system turn before each conversation (--chat, messages rows)" },
    "max-new-tokens": { type: "string", default: "64", description: "tokens to generate at most" },
    temperature: { type: "string", default: "1", description: "sampling temperature; 0 = greedy" },
    "top-k": { type: "string", default: "0", description: "sample among the k most likely tokens (0 = all)" },
    "top-p": { type: "string", default: "1", description: "nucleus sampling threshold" },
    seed: { type: "string", default: "0", description: "sampling seed" },
    logprobs: { type: "boolean", default: false, description: "print each generated token's log-probability" },
    "no-cache": {
      type: "boolean",
      default: false,
      description: "recompute the whole sequence each step (slow; for checking)",
    },
    lossy: { type: "boolean", default: false, description: "--prompts: invalid UTF-8 becomes U+FFFD, not an error" },
  },
  async run({ args }) {
    const sampling = samplingFlags(args);
    const src = { ...args, promptIds: args["prompt-ids"] };
    const t = checkpointTokenizer(args.ckpt, args.tokenizer);
    const tok = t?.tok ?? null;
    checkPromptSource(src, tok);
    await initGpu();
    const { config, params } = loadModel(args.ckpt);
    if (t) checkTokenizerFits(t, args.ckpt, config.vocab_size);
    const prompts = await readPrompts(src, tok, config.vocab_size);
    const eos = readGenerationEos(args.ckpt);
    // the text is shown once: where a person reads it, never both as a stream and in the JSON line
    const screen = !tok ? null : process.stdout.isTTY ? process.stdout : statusVisible() ? process.stderr : null;
    const useCache = !args["no-cache"];
    for (const [i, p] of prompts.entries()) {
      const stop = stopIds(config, eos, tok, args.chat || p.messages !== null);
      const stream = screen && tok ? new TextStream(tok) : null;
      clearStatus();
      const g = await generate(config, params, p.ids, {
        ...sampling,
        stop,
        useCache,
        // vocab_size may be padded beyond the tokenizer; ids past it would not decode
        vocabLimit: tok?.size,
        onToken: stream ? (id) => screen!.write(visible(stream.push(id))) : undefined,
      }).catch((e) => {
        throw generationFailure(e, args.ckpt, prompts.length > 1 ? ` of prompt ${i + 1}` : "");
      });
      if (stream) screen!.write(`${visible(stream.end())}\n`);
      const row = { config, tok, stop, useCache, logprobs: args.logprobs, omitText: screen === process.stdout };
      console.log(JSON.stringify(completionRow(p, g, row)));
    }
  },
});

if (import.meta.main) await runCli(command);
