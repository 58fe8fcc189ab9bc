// bun cmd/chat.ts --ckpt DIR [--tokenizer DIR] [--system TEXT] [--max-new-tokens N] [--temperature T]
//                 [--top-k K] [--top-p P] [--seed S] [--weights stored|f32] [--adapter LORA_DIR]
// A conversation with a checkpoint, one user turn per line of stdin; the KV cache is kept across
// turns, so a turn reads only its own tokens. On a terminal it prompts, streams each answer once
// (control characters escaped), and ends at /exit or Ctrl-D. When stdout is not a terminal, each
// turn is one JSON line: {"turn", "user", "text", "ids", "finish_reason", "prompt_tokens" (read for
// this turn), "cached_tokens" (reused from the cache), "context_tokens", "tokens_per_s"}. When the
// conversation fills the model's context, it says so in one line and ends.
import { defineCommand } from "citty";
import { Rng } from "../lib/base/rng.ts";
import { InputError } from "../lib/base/errors.ts";
import { clearStatus, log, statusVisible } from "../lib/base/log.ts";
import { initGpu } from "../lib/gpu/index.ts";
import { lines } from "../lib/io/readers.ts";
import { samplingFlags } from "../lib/model/sampling_flags.ts";
import { ChatSession, turnRow } from "../lib/model/chat_session.ts";
import { loadAdapter } from "../lib/model/lora.ts";
import { loadModel, type WeightsOnDevice } from "../lib/model/checkpoint.ts";
import { checkpointTokenizer, checkTokenizerFits } from "../lib/model/checkpoint_tokenizer.ts";
import { generationFailure, stopIds } from "../lib/model/completion.ts";
import { readGenerationEos } from "../lib/model/generation_config.ts";
import { TextStream, visible } from "../lib/tokenizer/text_stream.ts";
import { runCli } from "./_cli.ts";
import { MODEL_ARGS, modelDir, WEIGHTS_ARG } from "./_model_args.ts";

export const command = defineCommand({
  meta: { name: "chat", description: "Chat with a checkpoint, turn by turn, keeping the KV cache" },
  args: {
    ...MODEL_ARGS,
    weights: WEIGHTS_ARG,
    tokenizer: { type: "string", description: "tokenizer directory (unset: the checkpoint's own tokenizer.json)" },
    system: { type: "string", description: "a system turn that opens the conversation" },
    "max-new-tokens": { type: "string", default: "256", description: "tokens per answer at most" },
    temperature: { type: "string", default: "0.7", description: "sampling temperature; 0 = greedy" },
    "top-k": { type: "string", default: "0", description: "sample among the k most likely tokens (0 = all)" },
    "top-p": { type: "string", default: "1", description: "nucleus sampling threshold" },
    seed: { type: "string", default: "0", description: "sampling seed (one stream for the whole chat)" },
  },
  async run({ args }) {
    const sampling = samplingFlags(args);
    const ckpt = modelDir(args);
    const t = checkpointTokenizer(ckpt, args.tokenizer);
    if (!t) throw new InputError(`${ckpt}: no tokenizer.json; give the model's tokenizer with --tokenizer DIR`);
    await initGpu();
    const { config, params } = loadModel(ckpt, { weights: args.weights as WeightsOnDevice });
    if (args.adapter !== undefined) loadAdapter(args.adapter, params);
    checkTokenizerFits(t, ckpt, config.vocab_size);
    const stop = stopIds(config, readGenerationEos(ckpt), t.tok, true);
    const chat = await ChatSession.open(config, params, t.tok, {
      system: args.system,
      rng: new Rng(sampling.seed),
      stop,
    });
    const person = Boolean(process.stdin.isTTY);
    // the answer is shown once: streamed where a person reads it, else only in the JSON line
    const screen = process.stdout.isTTY ? process.stdout : statusVisible() ? process.stderr : null;
    const ask = () => person && process.stderr.write("> ");
    if (person) log.info(`chatting with ${ckpt}: one turn per line; /exit or Ctrl-D ends it`);
    ask();
    let exited = false;
    for await (const line of lines("-")) {
      if ((exited = line.trim() === "/exit")) break;
      if (!line.trim()) {
        ask();
        continue;
      }
      const stream = screen ? new TextStream(t.tok) : null;
      clearStatus();
      const r = await chat
        .say(line, {
          ...sampling,
          vocabLimit: t.tok.size,
          onToken: stream ? (id) => screen!.write(visible(stream.push(id))) : undefined,
        })
        .catch((e) => {
          throw generationFailure(e, ckpt);
        });
      if ("full" in r) {
        log.warn(r.full);
        break;
      }
      if (stream) screen!.write(`${visible(stream.end())}\n`);
      if (screen !== process.stdout) console.log(JSON.stringify(turnRow(r)));
      ask();
    }
    // Ctrl-D leaves the cursor after the prompt
    if (person && !exited) process.stderr.write("\n");
    chat.dispose();
  },
});

if (import.meta.main) await runCli(command);
