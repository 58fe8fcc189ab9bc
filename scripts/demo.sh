#!/usr/bin/env bash
# The demo: the example pipeline (examples/Makefile) from raw bilingual text to SFT, DPO and GRPO
# stages, about 10 minutes on 2 CPU cores with lavapipe; then the samples before and after training.
# Re-running redoes only what changed; `make -C examples clean` starts over.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
echo "bunlm demo: $(bun cmd/gpu-info.ts 2>/dev/null | bun -e 'const i = JSON.parse(await Bun.stdin.text()); console.log(`${i.provider} on ${i.adapter.description || i.adapter.device}`)')" >&2
make -C examples BUN=bun
echo >&2
echo "== samples before and after training (examples/runs/samples.jsonl)" >&2
bun -e '
const rows = (await Bun.file("examples/runs/samples.jsonl").text()).trim().split("\n").map((l) => JSON.parse(l));
let last = "";
for (const r of rows) {
  if (r.prompt !== last) console.log(`\n${r.stage === "chat" ? "chat" : "text"}: ${r.prompt}`);
  last = r.prompt;
  console.log(`  ${r.model.padEnd(9)} ${JSON.stringify(r.text)}`);
}'
echo >&2
echo "loss curves: examples/runs/loss.svg; checkpoints: examples/runs/*/latest; report: examples/runs/inspect.jsonl" >&2
