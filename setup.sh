#!/usr/bin/env bash
# bunlm set-up, then one task:
#   bash setup.sh demo   set up, then run the demo
#   bash setup.sh test   set up, then run the test suite (both WebGPU providers)
#   bash setup.sh        set up only
# Set-up: npm install (Bun comes as an npm package), then check for a real WebGPU adapter and, when
# there is none on Debian 12, install Mesa's lavapipe Vulkan driver from bookworm-backports.
set -euo pipefail
cd "$(dirname "$0")"
task="${1:-}"

command -v npm >/dev/null || { echo "setup.sh: needs Node.js and npm (Node >= 18)" >&2; exit 1; }
if [ ! -x node_modules/.bin/bun ] || [ package.json -nt node_modules/.package-lock.json ]; then
  echo "setup.sh: npm install" >&2
  npm install --no-audit --no-fund --loglevel=error >&2
fi
export PATH="$PWD/node_modules/.bin:$PATH"

# the `bunlm` command: a link to bin/bunlm, which finds its checkout through the link. An existing
# bunlm that works (another checkout's) is left alone; a dangling one is replaced.
if ! command -v bunlm >/dev/null || ! [ -e "$(command -v bunlm)" ]; then
  if [ -w /usr/local/bin ]; then
    ln -sf "$PWD/bin/bunlm" /usr/local/bin/bunlm
    echo "setup.sh: linked /usr/local/bin/bunlm -> $PWD/bin/bunlm" >&2
  else
    echo "setup.sh: for the bunlm command: ln -s $PWD/bin/bunlm ~/.local/bin/bunlm (or use bin/bunlm)" >&2
  fi
fi

# the example pipeline is a Makefile
if ! command -v make >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup.sh: installing make" >&2
    (apt-get install -y -qq make >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq make >/dev/null; })
  else
    echo "setup.sh: please install make (the example pipeline needs it)" >&2
  fi
fi

# plot --out x.png draws its labels with a system font (resvg); a bare Debian container has none
if ! find /usr/share/fonts /usr/local/share/fonts \( -name '*.tt[fc]' -o -name '*.otf' \) 2>/dev/null | grep -q .; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup.sh: installing fonts-dejavu-core (plot's PNG labels)" >&2
    (apt-get install -y -qq fonts-dejavu-core >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq fonts-dejavu-core >/dev/null; })
  else
    echo "setup.sh: plot --out x.png needs a font: install fonts-dejavu-core" >&2
  fi
fi

# training on many processes goes through MPI (lib/dist): mpiexec launches, and lib/dist compiles its
# bridge against mpi.h, so both the runtime and the headers; test/dist runs 2-rank jobs. Any MPI on
# PATH will do (a cluster's own, Open MPI); on bare Debian it is MPICH.
if ! command -v mpiexec >/dev/null || ! command -v mpicc >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup.sh: installing mpich libmpich-dev (training on many GPUs and machines)" >&2
    export DEBIAN_FRONTEND=noninteractive
    (apt-get install -y -qq mpich libmpich-dev >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq mpich libmpich-dev >/dev/null; })
  else
    echo "setup.sh: for mpirun (many GPUs and machines) and test/dist, install MPI: apt-get install mpich libmpich-dev" >&2
  fi
fi

if ! bun cmd/gpu-info.ts >/dev/null 2>/tmp/bunlm-gpu-info.$$; then
  echo "setup.sh: no usable WebGPU adapter yet: $(grep '^bunlm:' /tmp/bunlm-gpu-info.$$ || tail -1 /tmp/bunlm-gpu-info.$$)" >&2
  bash scripts/install-vulkan.sh
  bun cmd/gpu-info.ts >/dev/null 2>/tmp/bunlm-gpu-info.$$ || { grep '^bunlm:' /tmp/bunlm-gpu-info.$$ >&2; rm -f /tmp/bunlm-gpu-info.$$; exit 1; }
fi
rm -f /tmp/bunlm-gpu-info.$$
# pick the matmul kernel for this adapter once (cached in .cache/bunlm/)
[ -s .cache/bunlm/matmul-autotune.json ] || bun cmd/gpu-info.ts --autotune >/dev/null 2>&1 || true
echo "setup.sh: ready: $(bun cmd/gpu-info.ts 2>/dev/null | bun -e 'const i=JSON.parse(await Bun.stdin.text()); console.log(i.provider + " on " + (i.adapter.description || i.adapter.device))')" >&2

case "$task" in
  demo) exec bash scripts/demo.sh ;;
  test) exec bash scripts/test.sh ;;
  "") ;;
  *) echo "setup.sh: unknown task '$task' (demo, test, or nothing)" >&2; exit 2 ;;
esac
