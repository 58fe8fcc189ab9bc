// bun cmd/generate.ts --ckpt DIR [--tokenizer DIR] (--prompt TEXT | --prompt-ids 1,2,3 | --prompts FILE.jsonl)
//                     [--max-new-tokens N] [--temperature T] [--top-k K] [--top-p P] [--seed S] [--logprobs] [--chat]
// DIR is any directory with config.json + model.safetensors in Hugging Face Llama layout (ours, or one
// saved by transformers). Prints one JSON line per completion; on a TTY the text also streams to stderr.
// A checkpoint that records its tokenizer (a tokenizer.json copy, a training meta.json's hash) only
// generates with that one: ids of another vocabulary decode to fluent-looking garbage. Sampling never
// returns an id the tokenizer lacks, however far vocab_size is padded beyond it.
import { defineCommand } from "citty";
import { existsSync, readFileSync, realpathSync } from "node:fs";
import { join } from "node:path";
import * as v from "valibot";
import { initGpu } from "../lib/gpu/index.ts";
import { loadModel } from "../lib/model/checkpoint.ts";
import { generate, NonFiniteLogitsError } from "../lib/model/generate.ts";
import { cacheBytesPerToken } from "../lib/model/latent_cache.ts";
import { Tokenizer } from "../lib/tokenizer/tokenizer.ts";
import { renderChat, CHATML_TEMPLATE } from "../lib/tokenizer/chat_template.ts";
import { lines, parseJsonLine } from "../lib/io/readers.ts";
import { InputError } from "../lib/base/errors.ts";
import { validate, num } from "../lib/io/validate.ts";
import { runCli } from "./_cli.ts";

const Options = v.object({
  "max-new-tokens": v.pipe(v.number("expected a number"), v.integer(), v.minValue(1)),
  temperature: v.pipe(v.number("expected a number"), v.minValue(0, "must be >= 0 (0 = greedy)")),
  "top-k": v.pipe(v.number("expected a number"), v.integer(), v.minValue(0)),
  "top-p": v.pipe(v.number("expected a number"), v.gtValue(0, "must be in (0, 1]"), v.maxValue(1, "must be in (0, 1]")),
  seed: v.pipe(v.number("expected a number"), v.integer(), v.minValue(0)),
});

interface PromptIn {
  prompt: string | null;
  ids: number[];
  extra: Record<string, unknown>;
}

function parseIds(s: string, where: string): number[] {
  const ids = s
    .split(",")
    .map((x) => x.trim())
    .filter(Boolean)
    .map(Number);
  if (!ids.length || ids.some((x) => !Number.isInteger(x) || x < 0))
    throw new InputError(`${where}: expected comma-separated token ids, got "${s}"`);
  return ids;
}

function _sameDir(a: string, b: string): boolean {
  try {
    return realpathSync(a) === realpathSync(b);
  } catch {
    return false;
  }
}

/** meta.json's data.tokenizer_hash, when the checkpoint is a training checkpoint that has one. */
function _trainedHash(ckpt: string): { hash: string; data: string } | null {
  const file = join(ckpt, "meta.json");
  if (!existsSync(file)) return null;
  try {
    const d = JSON.parse(readFileSync(file, "utf8"))?.data;
    return typeof d?.tokenizer_hash === "string" && d.tokenizer_hash
      ? { hash: d.tokenizer_hash, data: String(d.dir ?? "") }
      : null;
  } catch {
    // meta.json only serves this check; a checkpoint whose meta.json is damaged still generates
    return null;
  }
}

/**
 * Refuse a tokenizer other than the one the checkpoint records: its own tokenizer.json copy and the
 * hash its training run wrote into meta.json (the training commands compare the same hash).
 */
function _checkTokenizer(ckpt: string, tokDir: string, tok: Tokenizer, given: boolean): void {
  const own = existsSync(join(ckpt, "tokenizer.json"));
  if (given && own) {
    const ownHash = Tokenizer.fromDir(ckpt).hash;
    if (ownHash !== tok.hash)
      throw new InputError(
        `--tokenizer ${tokDir}: is not the tokenizer of ${ckpt} (hash ${tok.hash}, ${join(ckpt, "tokenizer.json")} has ${ownHash}); leave --tokenizer out to use the checkpoint's own`,
      );
  }
  const trained = _trainedHash(ckpt);
  if (!trained || trained.hash === tok.hash) return;
  const meta = join(ckpt, "meta.json");
  if (!given)
    throw new InputError(
      `${join(ckpt, "tokenizer.json")}: is not the tokenizer ${ckpt} was trained with (hash ${tok.hash}, ${meta} says ${trained.hash}); give that one with --tokenizer DIR`,
    );
  const fix = own
    ? "leave --tokenizer out to use the checkpoint's own"
    : `give the tokenizer ${trained.data || "its training data"} was packed with`;
  throw new InputError(
    `--tokenizer ${tokDir}: is not the tokenizer ${ckpt} was trained with (hash ${tok.hash}, ${meta} says ${trained.hash}); ${fix}`,
  );
}

export const generateCmd = defineCommand({
  meta: { name: "generate", description: "Generate text from a checkpoint (KV cache, sampling, chat template)" },
  args: {
    ckpt: { type: "string", required: true, description: "directory with config.json + model.safetensors" },
    tokenizer: {
      type: "string",
      description: "tokenizer directory (default: the checkpoint's, when it has tokenizer.json)",
    },
    prompt: { type: "string", description: "prompt text" },
    "prompt-ids": { type: "string", description: "prompt as comma-separated token ids (no tokenizer needed)" },
    prompts: { type: "string", description: 'JSONL of {"prompt": text} or {"prompt_ids": [...]}, one completion each' },
    "max-new-tokens": { type: "string", default: "64", description: "tokens to generate at most" },
    temperature: { type: "string", default: "1", description: "sampling temperature; 0 = greedy" },
    "top-k": { type: "string", default: "0", description: "sample among the k most likely tokens (0 = all)" },
    "top-p": { type: "string", default: "1", description: "nucleus sampling threshold" },
    seed: { type: "string", default: "0", description: "sampling seed" },
    logprobs: { type: "boolean", default: false, description: "print each generated token's log-probability" },
    chat: {
      type: "boolean",
      default: false,
      description: "wrap the prompt as a user turn with the chat template; stop at <|im_end|>",
    },
    "no-cache": {
      type: "boolean",
      default: false,
      description: "recompute the whole sequence each step (slow; for checking)",
    },
    lossy: {
      type: "boolean",
      default: false,
      description: "--prompts: replace invalid UTF-8 with U+FFFD instead of refusing it",
    },
  },
  async run({ args }) {
    const o = validate(Options, {
      "max-new-tokens": num(args["max-new-tokens"]),
      temperature: num(args.temperature),
      "top-k": num(args["top-k"]),
      "top-p": num(args["top-p"]),
      seed: num(args.seed),
    });
    const given = [args.prompt, args["prompt-ids"], args.prompts].filter((x) => x !== undefined).length;
    if (given !== 1) throw new InputError("give exactly one of --prompt, --prompt-ids, --prompts");
    const tokDir = args.tokenizer ?? (existsSync(join(args.ckpt, "tokenizer.json")) ? args.ckpt : undefined);
    const tok = tokDir ? Tokenizer.fromDir(tokDir) : null;
    const tokGiven = args.tokenizer !== undefined && !_sameDir(args.tokenizer, args.ckpt);
    if (tok) _checkTokenizer(args.ckpt, tokDir!, tok, tokGiven);
    if (!tok && (args.prompt !== undefined || args.chat))
      throw new InputError("--prompt and --chat need a tokenizer: give --tokenizer DIR");
    await initGpu();
    const { config, params } = loadModel(args.ckpt);
    if (tok && tok.size > config.vocab_size)
      throw new InputError(
        `${tokGiven ? `--tokenizer ${tokDir}` : join(tokDir!, "tokenizer.json")}: has ${tok.size} tokens, the model in ${args.ckpt} only ${config.vocab_size}: they do not belong together; give the tokenizer the model was trained with`,
      );

    const toIds = (text: string): number[] => {
      if (!tok) throw new InputError("text prompts need a tokenizer: give --tokenizer DIR");
      const t = args.chat
        ? renderChat(tok.config.chat_template ?? CHATML_TEMPLATE, [{ role: "user", content: text }], true)
        : text;
      return tok.encode(t);
    };
    const prompts: PromptIn[] = [];
    if (args.prompt !== undefined) prompts.push({ prompt: args.prompt, ids: toIds(args.prompt), extra: {} });
    else if (args["prompt-ids"] !== undefined)
      prompts.push({ prompt: null, ids: parseIds(args["prompt-ids"], "--prompt-ids"), extra: {} });
    else {
      let index = 0;
      for await (const line of lines(args.prompts!, { lossy: args.lossy ? { replaced: 0 } : undefined })) {
        index++;
        if (!line.trim()) continue;
        const row = parseJsonLine(line, args.prompts!, index) as any;
        const { prompt, prompt_ids, ...extra } = row ?? {};
        if (typeof prompt === "string") prompts.push({ prompt, ids: toIds(prompt), extra });
        else if (Array.isArray(prompt_ids))
          prompts.push({ prompt: null, ids: parseIds(prompt_ids.join(","), `${args.prompts}:${index}`), extra });
        else throw new InputError(`${args.prompts}:${index}: expected {"prompt": text} or {"prompt_ids": [...]}`);
      }
    }
    for (const p of prompts) {
      const bad = p.ids.find((x) => x >= config.vocab_size);
      if (bad !== undefined)
        throw new InputError(`prompt token id ${bad} is outside the model's vocabulary (${config.vocab_size})`);
    }

    const stop = new Set<number>(config.eos_token_id);
    if (tok) {
      stop.add(tok.specialId("<|endoftext|>"));
      if (args.chat) stop.add(tok.specialId("<|im_end|>"));
    }
    const tty = Boolean(process.stderr.isTTY);
    for (const [n, p] of prompts.entries()) {
      let shown = "";
      const streamed: number[] = [];
      const g = await generate(config, params, p.ids, {
        maxNewTokens: o["max-new-tokens"],
        temperature: o.temperature,
        topK: o["top-k"],
        topP: o["top-p"],
        seed: o.seed,
        stop: [...stop],
        useCache: !args["no-cache"],
        // vocab_size may be padded beyond the tokenizer; ids past it would not decode
        vocabLimit: tok?.size,
        onToken: (id) => {
          if (!tty || !tok) return;
          streamed.push(id);
          const text = tok.decode(streamed, true);
          process.stderr.write(text.slice(shown.length));
          shown = text;
        },
      }).catch((e) => {
        if (!(e instanceof NonFiniteLogitsError)) throw e;
        const which = prompts.length > 1 ? ` of prompt ${n + 1}` : "";
        throw new InputError(
          `${args.ckpt}: ${e.message}${which}; its weights are broken (bun cmd/ckpt-inspect.ts ${args.ckpt} --stats shows each tensor's range and non-finite values)`,
        );
      });
      if (tty && tok) process.stderr.write("\n");
      const out: Record<string, unknown> = { ...p.extra, prompt: p.prompt ?? p.ids };
      if (tok)
        out.text = tok.decode(
          g.ids.filter((id) => !stop.has(id)),
          true,
        );
      out.ids = g.ids;
      out.finish_reason = g.finish;
      out.tokens_per_s = +(g.ids.length / g.seconds).toFixed(2);
      if (config.attn_type === "mla") {
        // the latent cache against the keys and values it stands for, per token over all layers
        const b = cacheBytesPerToken(config);
        out.kv_cache_bytes_per_token = args["no-cache"] ? 0 : b.latent;
        out.kv_cache_bytes_per_token_expanded = b.expanded;
      } else
        out.kv_cache_bytes_per_token = args["no-cache"]
          ? 0
          : 2 * config.num_hidden_layers * config.num_key_value_heads * config.head_dim * 4;
      if (args.logprobs) out.logprobs = g.logprobs.map((x) => +x.toFixed(6));
      console.log(JSON.stringify(out));
    }
  },
});

if (import.meta.main) await runCli(generateCmd);
