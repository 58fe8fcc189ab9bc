// bun cmd/generate.ts --ckpt DIR [--tokenizer DIR] (--prompt TEXT | --prompt-ids 1,2,3 | --prompts FILE.jsonl)
//                     [--chat] [--system TEXT] [--max-new-tokens N] [--temperature T] [--top-k K] [--top-p P]
//                     [--seed S] [--logprobs] [--batch-size N] [--weights stored|f32] [--adapter LORA_DIR]
// DIR is any directory with config.json + model.safetensors in Hugging Face Llama layout (ours, or one
// saved by transformers); --adapter adds a LoRA adapter to it (--ckpt defaults to the base the adapter names). Prints one JSON line per completion, in the order of the prompts. --prompts
// rows are decoded --batch-size at a time, one forward per token for the whole batch; each row samples
// from its own generator seeded --seed, so a row gets the same completion in any batch, or alone. On a
// terminal the text is shown once: streamed as it is sampled when a batch holds one prompt, else each
// row's text when its batch ends; into stdout, whose JSON line then leaves "text" out, or, when stdout
// is a pipe, into stderr; control characters show escaped. --prompts rows may be conversations
// ({"messages": [...]}).
import { defineCommand } from "citty";
import { initGpu } from "../lib/gpu/index.ts";
import { loadModel, type WeightsOnDevice } from "../lib/model/checkpoint.ts";
import { loadAdapter } from "../lib/model/lora.ts";
import { InputError } from "../lib/base/errors.ts";
import { checkpointTokenizer, checkTokenizerFits } from "../lib/model/checkpoint_tokenizer.ts";
import { completionRow, generationFailure, stopIds } from "../lib/model/completion.ts";
import { generate, NonFiniteLogitsError, type Generation } from "../lib/model/generate.ts";
import { generateBatch } from "../lib/model/generate_batch.ts";
import { readGenerationEos } from "../lib/model/generation_config.ts";
import { checkPromptSource, readPrompts } from "../lib/model/prompts.ts";
import { TextStream, visible } from "../lib/tokenizer/text_stream.ts";
import { clearStatus, statusVisible } from "../lib/base/log.ts";
import { samplingFlags } from "../lib/model/sampling_flags.ts";
import { num, validate } from "../lib/io/validate.ts";
import { runCli } from "./_cli.ts";
import { MODEL_ARGS, modelDir, WEIGHTS_ARG } from "./_model_args.ts";
import * as v from "valibot";

const BatchFlag = v.object({
  "batch-size": v.pipe(
    v.number("expected a number"),
    v.integer("must be a whole number"),
    v.minValue(1, "must be 1 or more"),
  ),
});

export const command = defineCommand({
  meta: { name: "generate", description: "Generate text from a checkpoint (KV cache, sampling, chat template)" },
  args: {
    ...MODEL_ARGS,
    weights: WEIGHTS_ARG,
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
    "batch-size": {
      type: "string",
      default: "8",
      description: "--prompts: completions decoded together, one forward per token for all (1: one at a time)",
    },
  },
  async run({ args }) {
    const ckpt = modelDir(args);
    const sampling = samplingFlags(args);
    const batchSize = validate(BatchFlag, { "batch-size": num(args["batch-size"]) })["batch-size"];
    const src = { ...args, promptIds: args["prompt-ids"] };
    const t = checkpointTokenizer(ckpt, args.tokenizer);
    const tok = t?.tok ?? null;
    checkPromptSource(src, tok);
    await initGpu();
    const { config, params } = loadModel(ckpt, { weights: args.weights as WeightsOnDevice });
    if (args.adapter !== undefined) loadAdapter(args.adapter, params);
    if (t) checkTokenizerFits(t, ckpt, config.vocab_size);
    const prompts = await readPrompts(src, tok, config.vocab_size);
    const eos = readGenerationEos(ckpt);
    // the text is shown once: where a person reads it, never both as a stream and in the JSON line
    const screen = !tok ? null : process.stdout.isTTY ? process.stdout : statusVisible() ? process.stderr : null;
    const useCache = !args["no-cache"];
    // recomputing every step (--no-cache) is the one-at-a-time reference
    const size = useCache ? batchSize : 1;
    for (let at = 0; at < prompts.length; at += size) {
      const batch = prompts.slice(at, at + size);
      const stops = batch.map((p) => stopIds(config, eos, tok, args.chat || p.messages !== null));
      const failure = (e: unknown) => {
        const i = at + (e instanceof NonFiniteLogitsError ? (e.sequence ?? 0) : 0);
        return generationFailure(e, ckpt, prompts.length > 1 ? ` of prompt ${i + 1}` : "");
      };
      // vocab_size may be padded beyond the tokenizer; ids past it would not decode
      const o = { ...sampling, vocabLimit: tok?.size };
      let gens: Generation[];
      let shown = false;
      clearStatus();
      if (batch.length === 1) {
        const stream = screen && tok ? new TextStream(tok) : null;
        const onToken = stream ? (id: number) => screen!.write(visible(stream.push(id))) : undefined;
        gens = [
          await generate(config, params, batch[0]!.ids, { ...o, stop: stops[0]!, useCache, onToken }).catch((e) => {
            throw failure(e);
          }),
        ];
        if (stream) screen!.write(`${visible(stream.end())}\n`);
        shown = !!stream;
      } else {
        const items = batch.map((p, i) => ({ prompt: p.ids, stop: stops[i]!, seed: sampling.seed }));
        gens = await generateBatch(config, params, items, o).catch((e) => {
          throw failure(e);
        });
      }
      batch.forEach((p, i) => {
        const g = gens[i]!;
        if (screen && tok && !shown) {
          const stream = new TextStream(tok);
          screen.write(`${visible(g.ids.map((id) => stream.push(id)).join("") + stream.end())}\n`);
        }
        const row = {
          config,
          tok,
          stop: stops[i]!,
          useCache,
          logprobs: args.logprobs,
          omitText: screen === process.stdout,
        };
        console.log(JSON.stringify(completionRow(p, g, row)));
      });
    }
  },
});

if (import.meta.main) await runCli(command);
