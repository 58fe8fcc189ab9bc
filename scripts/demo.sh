#!/usr/bin/env bash
# The demo. The full pipeline (raw text → tokenizer → shards → pretrain → sft → dpo → grpo → generate)
# is not built yet; until it is, the demo shows what exists: the adapter bunlm found, and the matmul
# kernel's speed on it (with PyTorch's beside it when PyTorch is installed: bash bench/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
echo "bunlm demo: the training pipeline is not built yet; showing the GPU runtime and the matmul kernel." >&2
echo "== adapter (bun cmd/gpu-info.ts)" >&2
bun cmd/gpu-info.ts 2>/dev/null
echo "== matmul GFLOPS (bun bench/matmul.ts --sizes 256,512,1024 --providers dawn --no-torch)" >&2
bun bench/matmul.ts --sizes 256,512,1024 --providers dawn --no-torch
