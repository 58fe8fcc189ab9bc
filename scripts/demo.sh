#!/usr/bin/env bash
# The demo: raw text → tokenizer → shards → pre-training → SFT → generation, on the small example
# text, with a tiny model (about a minute on 2 CPU cores with lavapipe). The full example pipeline
# with a bigger corpus, DPO and GRPO is examples/' job.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
out=runs/demo
rm -rf "$out"
say() { echo "== $*" >&2; }
last() { tail -n 1; }
say "adapter"
bun cmd/gpu-info.ts 2>/dev/null | bun -e 'const i = JSON.parse(await Bun.stdin.text()); console.error(`   ${i.provider} on ${i.adapter.description || i.adapter.device}`)'
say "tokenize train: byte-level BPE on examples/data/bilingual.txt"
bun cmd/tokenize.ts train --vocab-size 600 --min-frequency 1 --out $out/tok --lines examples/data/bilingual.txt | last
say "pack seq and sft"
bun cmd/pack.ts seq --tokenizer $out/tok --seq-len 32 --out $out/seq --val-fraction 0.1 --lines examples/data/bilingual.txt | last
bun cmd/pack.ts sft --tokenizer $out/tok --seq-len 64 --out $out/sft examples/data/chat.jsonl | last
say "pretrain a $(bun -e 'const c=JSON.parse(require("fs").readFileSync("examples/configs/tiny.json","utf8")); console.log(`${c.num_hidden_layers}-layer, ${c.hidden_size}-wide`)') model for 150 steps"
bun cmd/pretrain.ts --data $out/seq --out $out/pt --model examples/configs/tiny.json --max-steps 150 --batch-size 4 --max-lr 3e-3 --warmup-steps 10 --log-interval 50 --seed 1 | grep -E '"event":"(step|summary)"'
say "sft for 20 steps"
bun cmd/sft.ts --data $out/sft --out $out/sft-run --init $out/pt/step_000150 --max-steps 20 --batch-size 2 --max-lr 1e-3 --log-interval 20 | last
say "generate (greedy), before and after training"
bun cmd/pretrain.ts --data $out/seq --out $out/untrained --model examples/configs/tiny.json --max-steps 1 --max-lr 1e-12 --batch-size 1 --seed 1 >/dev/null
for p in "The river ran" "河水静静地"; do
  bun cmd/generate.ts --ckpt $out/untrained/step_000001 --prompt "$p" --max-new-tokens 16 --temperature 0 2>/dev/null | bun -e 'const o = JSON.parse(await Bun.stdin.text()); console.log(`untrained: ${JSON.stringify(o.prompt + o.text)}`)'
  bun cmd/generate.ts --ckpt $out/pt/step_000150 --prompt "$p" --max-new-tokens 16 --temperature 0 2>/dev/null | bun -e 'const o = JSON.parse(await Bun.stdin.text()); console.log(`trained:   ${JSON.stringify(o.prompt + o.text)}`)'
done
