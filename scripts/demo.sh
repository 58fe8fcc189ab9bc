#!/usr/bin/env bash
# The demo: the example pipeline (examples/Makefile) from raw bilingual text and sums to SFT, DPO and
# GRPO stages, about 7 minutes on 2 CPU cores with lavapipe; then the samples before and after
# training and the held-out accuracy after each stage (one-digit sums whose operand order no training
# file has: "7 plus 5" when only "5 plus 7" was trained).
# Re-running redoes only what changed; `make -C examples clean` starts over.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
echo "bunlm demo: $(bun cmd/gpu-info.ts 2>/dev/null | bun -e 'const i = JSON.parse(await Bun.stdin.text()); console.log(`${i.provider} on ${i.adapter.description || i.adapter.device}`)')" >&2
start=$SECONDS
make -C examples BUN=bun
echo >&2
echo "== samples before and after training (examples/runs/samples.jsonl)" >&2
bun -e '
const rows = (await Bun.file("examples/runs/samples.jsonl").text()).trim().split("\n").map((l) => JSON.parse(l));
let last = "";
for (const r of rows) {
  const head = `${r.stage === "chat" ? "chat" : "text"}: ${r.prompt}`;
  if (head !== last) console.log(`\n${head}`);
  last = head;
  console.log(`  ${r.model.padEnd(9)} ${JSON.stringify(r.text)}`);
}'
echo
echo "== held-out accuracy after each stage: greedy chat answers to 48 one-digit sums whose operand order"
echo "   no training file has (examples/runs/accuracy.jsonl; each answer in examples/runs/eval/)"
bun -e '
const rows = (await Bun.file("examples/runs/accuracy.jsonl").text()).trim().split("\n").map((l) => JSON.parse(l));
const note = { pt: "  (no chat turns yet: its sums are in plain text, see \"text: What is 7 plus 5?\")" };
for (const r of rows)
  console.log(`  ${r.stage.padEnd(5)} ${(100 * r.accuracy).toFixed(1).padStart(5)}%  (${r.correct}/${r.total})${note[r.stage] ?? ""}`);'
echo >&2
echo "loss curves: examples/runs/loss.svg; checkpoints: examples/runs/*/latest; report: examples/runs/inspect.jsonl; $((SECONDS - start)) s" >&2
