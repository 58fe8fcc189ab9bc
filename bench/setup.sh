#!/usr/bin/env bash
# The benchmarks' own set-up: PyTorch for the reference figures. On Debian: python3-torch with
# libopenblas0-pthread, so the CPU reference runs on OpenBLAS (Debian's default reference BLAS is
# ~40x slower and would flatter us). Elsewhere, or without root, it says so and the benches skip torch.
set -u
if /usr/bin/python3 -c 'import torch' 2>/dev/null; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "bench/setup.sh: installing python3-torch and libopenblas0-pthread" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch libopenblas0-pthread >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch libopenblas0-pthread >/dev/null 2>&1; }
fi
/usr/bin/python3 -c 'import torch' 2>/dev/null || { echo "bench/setup.sh: PyTorch not available; reference figures will be null" >&2; exit 1; }
