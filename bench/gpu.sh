#!/usr/bin/env bash
# bash bench/gpu.sh [--dry-run] [--budget SECONDS]
# Every GPU figure of issue #16 as JSON lines on stdout (bench/gpu.ts says which, and how each step is
# timed out); progress on stderr. On a bare GPU machine, pack what it lacks here first with
# `bash bench/gpu_prepare.sh`, carry .gpu, and run there `source .gpu/enter.sh && bash bench/gpu.sh`.
# --dry-run runs the same steps at tiny sizes on any adapter (lavapipe here) and skips the CUDA-only
# parts, each with its reason: test/bench/gpu_dry_run.test.ts runs it.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 1
# Bun: on the PATH, the project's own, or the one .gpu/enter.sh unpacks on a bare machine
if ! command -v bun >/dev/null; then
  if [ -x node_modules/.bin/bun ]; then
    PATH=$root/node_modules/.bin:$PATH
  elif [ -f .gpu/enter.sh ]; then
    # shellcheck disable=SC1091 # written by bench/gpu_prepare.sh
    source .gpu/enter.sh >&2 || exit 1
  else
    echo "gpu.sh: no bun on the PATH, no node_modules and no .gpu/enter.sh (bench/gpu_prepare.sh makes it)" >&2
    exit 1
  fi
fi
command -v timeout >/dev/null || { echo "gpu.sh: coreutils' timeout is needed to bound each step" >&2; exit 1; }
exec bun bench/gpu.ts "$@"
