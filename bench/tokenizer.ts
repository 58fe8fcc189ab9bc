// bun bench/tokenizer.ts [--corpus FILE] [--vocab-size 30000]
// Training time and encoding throughput of our tokenizer against Hugging Face's `tokenizers` (Rust,
// through its Node binding) on the same corpus, vocabulary size and pre-tokenization, in one run.
// Prints one JSON line. Default corpus: the Brown corpus (bench/corpus.ts), one document per line.
// The Node binding trains only with BPE's default trainer, whose vocabulary size is 30000, so that is
// the size both sides train to.
import { defineCommand } from "citty";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Tokenizer as HfTokenizer } from "tokenizers";
import { runCli } from "../cmd/_cli.ts";
import { readDocs } from "../lib/io/readers.ts";
import { trainTokenizer } from "../lib/tokenizer/train.ts";
import { Tokenizer } from "../lib/tokenizer/tokenizer.ts";
import { EncodePool } from "../lib/tokenizer/encode_pool.ts";
import { brownCorpus } from "./corpus.ts";

const main = defineCommand({
  meta: { name: "bench-tokenizer", description: "tokenizer training and encoding against HF tokenizers" },
  args: {
    corpus: { type: "string", description: "a text file, one document per line (default: the Brown corpus)" },
    "vocab-size": {
      type: "string",
      default: "30000",
      description: "vocabulary size (HF's binding trains to 30000 only)",
    },
  },
  async run({ args }) {
    const corpus = args.corpus ?? brownCorpus();
    const vocabSize = Number(args["vocab-size"]);
    const bytes = readFileSync(corpus).length;
    const lines = readFileSync(corpus, "utf8")
      .split("\n")
      .filter((l) => l.length > 0);

    // ---- training ----
    const ourDir = mkdtempSync(join(tmpdir(), "bunlm-bench-tok-"));
    let t0 = performance.now();
    await trainTokenizer(readDocs([corpus], { lines: true }), ourDir, { vocabSize });
    const oursTrain = (performance.now() - t0) / 1000;

    // HF: same normalizer and pre-tokenizer (our tokenizer.json with an empty BPE model), default trainer
    const spec = JSON.parse(readFileSync(join(ourDir, "tokenizer.json"), "utf8"));
    spec.model.vocab = {};
    spec.model.merges = [];
    spec.added_tokens = [];
    const hfTrainer = HfTokenizer.fromString(JSON.stringify(spec));
    t0 = performance.now();
    hfTrainer.train([corpus]);
    const hfTrain = (performance.now() - t0) / 1000;

    // ---- encoding (with the tokenizer we trained, loaded on both sides) ----
    const ours = Tokenizer.fromDir(ourDir);
    const hf = HfTokenizer.fromFile(join(ourDir, "tokenizer.json"));
    const hfIds = (await hf.encodeBatch(lines.slice(0, 200))).map((e) => e.getIds());
    lines.slice(0, 200).forEach((l, i) => {
      const mine = ours.encode(l);
      if (mine.length !== hfIds[i]!.length || mine.some((x, k) => x !== hfIds[i]![k]))
        throw new Error(`ids differ from HF on line ${i + 1}`);
    });
    const fresh = () => Tokenizer.fromDir(ourDir); // a cold cache, as a new process has
    t0 = performance.now();
    let n = 0;
    const one = fresh();
    for (const l of lines) n += one.encode(l).length;
    const oursSingle = (performance.now() - t0) / 1000;

    const threads = navigator.hardwareConcurrency;
    const pool = new EncodePool(ourDir, threads);
    t0 = performance.now();
    let m = 0;
    for await (const [ids] of pool.encodeAll(readDocs([corpus], { lines: true }), () => {}, -1)) m += ids.length;
    const oursPool = (performance.now() - t0) / 1000;
    pool.close();

    t0 = performance.now();
    const enc = await hf.encodeBatch(lines);
    let k = 0;
    for (const e of enc) k += e.getLength();
    const hfBatch = (performance.now() - t0) / 1000;
    if (k !== n || m !== n) throw new Error(`token counts differ: ours ${n} (pool ${m}), HF ${k}`);

    const mb = bytes / 1e6;
    console.log(
      JSON.stringify({
        corpus,
        bytes,
        documents: lines.length,
        vocab_size: vocabSize,
        tokens: n,
        cores: threads,
        train_s: +oursTrain.toFixed(3),
        hf_train_s: +hfTrain.toFixed(3),
        train_ratio: +(oursTrain / hfTrain).toFixed(3),
        encode_mb_s: +(mb / oursPool).toFixed(2),
        encode_single_thread_mb_s: +(mb / oursSingle).toFixed(2),
        hf_encode_batch_mb_s: +(mb / hfBatch).toFixed(2),
        encode_ratio: +(hfBatch / oursPool).toFixed(3),
      }),
    );
  },
});

if (import.meta.main) await runCli(main);
