// bun ../cmd/generate.ts --ckpt RUN/sft-run/latest --prompts data/heldout.jsonl --chat --temperature 0 \
//   | bun accuracy.ts --stage sft --answers RUN/eval/sft.answers.jsonl
// Scores `generate`'s answers to the held-out questions (rows {"prompt", "answer", "text", …}) with the
// reward's own check (reward.ts: the last number is the sum, the others are the question's operands).
// Prints one line, {"stage", "accuracy", "correct", "total"}; --answers keeps each answer with its
// verdict, to read which sums a stage gets wrong.
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { isCorrect } from "./reward.ts";

const { values } = parseArgs({ options: { stage: { type: "string" }, answers: { type: "string" } } });
if (!values.stage) throw new Error("accuracy.ts: give --stage NAME");
const rows = (await Bun.stdin.text())
  .split("\n")
  .filter(Boolean)
  .map((l) => JSON.parse(l) as { prompt: string; answer: string; text: string });
if (!rows.length) throw new Error("accuracy.ts: no answers on stdin");
const scored = rows.map((r) => ({
  prompt: r.prompt,
  answer: r.answer,
  text: r.text,
  correct: isCorrect(r.prompt, r.text, r.answer),
}));
if (values.answers) writeFileSync(values.answers, scored.map((r) => JSON.stringify(r)).join("\n") + "\n");
const correct = scored.filter((r) => r.correct).length;
console.log(
  JSON.stringify({ stage: values.stage, accuracy: +(correct / rows.length).toFixed(4), correct, total: rows.length }),
);
