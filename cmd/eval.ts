// bun cmd/eval.ts --ckpt DIR [--tokenizer DIR] [--text FILE] [--data SHARD_DIR] [--tasks FILE.jsonl]
//                 [--seq-len L] [--batch-size N] [--limit N] [--split auto|train|val] [--field NAME] [--lines]
//                 [--delimiter TEXT] [--per-item] [--weights stored|f32]
// Scores a checkpoint (ours, or a Hugging Face model directory) on any of: documents (perplexity and
// bits per byte, lm-eval's rolling windows: lib/train/eval_text.ts), a packed seq or sft shard
// directory (the loss training reports for that split), and multiple-choice questions
// ({"context", "choices", "answer"} rows: acc and acc_norm as lm-eval scores them,
// lib/train/eval_tasks.ts). One JSON line per result on stdout, {"event":"eval",...}, so a Makefile
// can gate a stage on it (`jq -e '.acc > 0.5'`); --per-item adds a line per document or question.
import { defineCommand } from "citty";
import * as v from "valibot";
import { InputError } from "../lib/base/errors.ts";
import { initGpu } from "../lib/gpu/index.ts";
import { loadAdapter } from "../lib/model/lora.ts";
import { loadModel, type WeightsOnDevice } from "../lib/model/checkpoint.ts";
import { checkpointTokenizer, checkTokenizerFits } from "../lib/model/checkpoint_tokenizer.ts";
import { readDocs, readRows } from "../lib/io/readers.ts";
import { progress } from "../lib/io/progress.ts";
import { clearStatus } from "../lib/base/log.ts";
import { num, validate } from "../lib/io/validate.ts";
import { perplexityFields, scoringTokens, shardPerplexity, textPerplexity } from "../lib/train/eval_text.ts";
import { readQuestions, taskAccuracy } from "../lib/train/eval_tasks.ts";
import { bool, runCli, str } from "./_cli.ts";
import { MODEL_ARGS, modelDir, WEIGHTS_ARG } from "./_model_args.ts";

/** The window when --seq-len is auto: the model's own, but no longer than this (memory grows with it). */
const AUTO_SEQ_LEN = 2048;

const whole = (min: number) =>
  v.pipe(v.number("expected a number"), v.integer("must be a whole number"), v.minValue(min, `must be ${min} or more`));
const Flags = v.object({
  "seq-len": v.optional(whole(2)),
  "batch-size": whole(1),
  limit: whole(0),
});

export const command = defineCommand({
  meta: { name: "eval", description: "Perplexity, bits per byte and multiple-choice accuracy of a checkpoint" },
  args: {
    ...MODEL_ARGS,
    tokenizer: str("DIR", "tokenizer directory (unset: the checkpoint's own tokenizer.json)"),
    text: str("FILE", "documents to score: .txt (one document; --lines: one a line), .jsonl or .parquet"),
    data: str("DIR", "a `pack seq` or `pack sft` shard directory to score"),
    tasks: str("FILE", 'multiple-choice questions: JSONL rows {"context", "choices": [...], "answer": index}'),
    "seq-len": str("L", `window in tokens; auto: max_position_embeddings, at most ${AUTO_SEQ_LEN} (--data: its rows)`, {
      default: "auto",
    }),
    "batch-size": str("N", "windows (or choices, or rows) per forward", { default: "8" }),
    limit: str("N", "score only the first N documents, rows or questions (0: all)", { default: "0" }),
    split: {
      type: "enum",
      options: ["auto", "train", "val"],
      default: "auto",
      valueHint: "auto|train|val",
      description: "--data: the split to score; auto: val when it has rows, else train",
    },
    field: str("NAME", "--text: JSONL field / parquet column holding the text", { default: "text" }),
    lines: bool("--text: a .txt file holds one document per line"),
    delimiter: str(
      "TEXT",
      '--tasks: put between the context and each choice, as lm-eval\'s target_delimiter (a space; "" for none)',
      {
        default: " ",
      },
    ),
    "per-item": bool("also print a line per document or question"),
    weights: WEIGHTS_ARG,
  },
  async run({ args }) {
    if (!args.text && !args.data && !args.tasks) throw new InputError("give --text FILE, --data DIR or --tasks FILE");
    const o = validate(Flags, {
      "seq-len": args["seq-len"] === "auto" ? undefined : num(args["seq-len"]),
      "batch-size": num(args["batch-size"]),
      limit: num(args.limit),
    });
    const ckpt = modelDir(args);
    const t = checkpointTokenizer(ckpt, args.tokenizer);
    if (!t && (args.text || args.tasks))
      throw new InputError(
        `${ckpt}: has no tokenizer.json; --${args.text ? "text" : "tasks"} needs one: give --tokenizer DIR`,
      );
    // questions are checked before the model loads: a bad row fails at once
    const questions = args.tasks ? await readQuestions(readRows([args.tasks]), o.limit, args.tasks) : [];
    await initGpu();
    const { config, params } = loadModel(ckpt, { weights: args.weights as WeightsOnDevice });
    if (args.adapter !== undefined) loadAdapter(args.adapter, params);
    if (t) checkTokenizerFits(t, ckpt, config.vocab_size);
    const maxLen = config.max_position_embeddings;
    if (o["seq-len"] !== undefined && o["seq-len"] > maxLen)
      throw new InputError(`--seq-len ${o["seq-len"]}: longer than the model's max_position_embeddings ${maxLen}`);
    const seqLen = o["seq-len"] ?? Math.min(maxLen, AUTO_SEQ_LEN);
    const batchSize = o["batch-size"];
    const special = t ? scoringTokens(t.tok, t.dir) : null;
    const per = args["per-item"];
    const pr = {
      text: progress("text", " tokens"),
      data: progress("shards", " rows"),
      tasks: progress("tasks", " questions"),
    };
    const out = (x: object) => {
      clearStatus();
      console.log(JSON.stringify(x));
    };
    try {
      if (args.text) {
        const docs = readDocs([args.text], { field: args.field, lines: args.lines });
        const r = await textPerplexity(config, params, t!.tok, special!, docs, {
          seqLen,
          batchSize,
          limit: o.limit,
          onProgress: (n) => pr.text.update(n),
          onDoc: per
            ? (d) =>
                out({
                  event: "document",
                  text: args.text,
                  index: d.index,
                  tokens: d.tokens,
                  loss: d.tokens ? d.nll / d.tokens : null,
                  bytes: d.bytes,
                })
            : undefined,
        });
        out({ event: "eval", text: args.text, documents: r.documents, seq_len: seqLen, ...perplexityFields(r) });
      }
      if (args.data) {
        const r = await shardPerplexity(config, params, args.data, {
          split: args.split as "auto" | "train" | "val",
          batchSize,
          limit: o.limit,
          tok: t?.tok ?? null,
          onProgress: (n, total) => pr.data.update(n, total),
        });
        out({
          event: "eval",
          data: args.data,
          split: r.split,
          rows: r.rows,
          seq_len: r.seqLen,
          ...perplexityFields(r),
        });
      }
      if (args.tasks) {
        const r = await taskAccuracy(config, params, t!.tok, special!, questions, {
          seqLen,
          batchSize,
          delimiter: args.delimiter as string,
          onProgress: (n) => pr.tasks.update(n, questions.length),
          onQuestion: per
            ? (s) =>
                out({
                  event: "question",
                  task: args.tasks,
                  index: s.question.index,
                  answer: s.question.answer,
                  pred: s.pred,
                  pred_norm: s.predNorm,
                  loglikelihoods: s.loglikelihoods,
                })
            : undefined,
        });
        out({ event: "eval", task: args.tasks, ...r });
      }
    } finally {
      clearStatus();
    }
  },
});

if (import.meta.main) await runCli(command);
