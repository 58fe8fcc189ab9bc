#!/usr/bin/env bash
# bash bench/gpu_prepare.sh
# Packs what a bare NVIDIA GPU machine (driver present, no network, no Bun) lacks to run bench/gpu.sh,
# into .gpu/ (git-ignored), adapted from the workplace's shared/gpu/prepare.sh so the project does
# not depend on it:
#   .gpu/bun.xz            the Bun binary, compressed (107 MB raw, ~30 MB packed)
#   .gpu/node_modules.txz  node_modules without Bun itself and the natives the GPU run does not load
#   .gpu/debs/*.deb        the Vulkan loader and GL dispatch libraries NVIDIA's Vulkan driver loads
#   .gpu/enter.sh          source it on the GPU machine, from the project root: unpacks all of the above
# Run it here after `bun install`; send the checkout with .gpu/ carried, and run there:
#   source .gpu/enter.sh && bash bench/gpu.sh
# The machine there is x86-64, so the packed Bun and Dawn must be x86-64 ones: run this on x86-64.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
die() {
  echo "gpu_prepare.sh: $*" >&2
  exit 1
}
[ "$(uname -m)" = x86_64 ] || die "this machine is $(uname -m); the GPU machine runs x86-64 binaries, so pack on x86-64"
[ -d node_modules/webgpu/dist/linux-x64 ] || die "node_modules/webgpu/dist/linux-x64 is missing; run bun install first"
# .gitignore lists .gpu/; a checkout without that line gets it in .git/info/exclude instead
if ! git check-ignore -q .gpu/ 2>/dev/null && [ -d .git/info ]; then echo '/.gpu/' >>.git/info/exclude; fi
mkdir -p .gpu/debs

bun_bin=$(command -v bun || true)
[ -x node_modules/bun/bin/bun.exe ] && bun_bin=node_modules/bun/bin/bun.exe
[ -n "$bun_bin" ] || die "no bun found; install the project first"
bun_bin=$(readlink -f "$bun_bin")
if [ ! -s .gpu/bun.xz ] || [ "$bun_bin" -nt .gpu/bun.xz ]; then xz -T0 -6 -c "$bun_bin" >.gpu/bun.xz; fi

# node_modules minus the runtime itself, the formatter, the tokenizers' natives (tests only) and the
# natives of other systems; repacked only when it changed
stamp=$(find node_modules -maxdepth 2 -newer .gpu/node_modules.txz -print -quit 2>/dev/null || echo new)
if [ ! -s .gpu/node_modules.txz ] || [ -n "$stamp" ]; then
  tar --exclude='node_modules/bun' --exclude='node_modules/@oven' --exclude='node_modules/tokenizers' \
    --exclude='node_modules/@tokenizers' --exclude='node_modules/@biomejs' --exclude='node_modules/webgpu/dist/darwin-*' \
    --exclude='node_modules/webgpu/dist/win32-*' --exclude='node_modules/webgpu/dist/linux-arm64' \
    --exclude='node_modules/.cache' -cf - node_modules | xz -T0 -6 >.gpu/node_modules.txz
fi

if ! ls .gpu/debs/libvulkan1_*.deb >/dev/null 2>&1; then
  lists=/tmp/gpu-apt-lists
  mkdir -p $lists/partial
  o="-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=$lists"
  # shellcheck disable=SC2086 # $o is several options
  apt-get $o update >/dev/null || die "apt-get update failed; the Vulkan loader comes from the distribution's archive"
  # shellcheck disable=SC2086
  (cd .gpu/debs && apt-get $o download libvulkan1 libglvnd0 libgl1 libglx0 libegl1 libgles2 libopengl0 >/dev/null 2>&1) ||
    die "apt-get download of the Vulkan loader failed"
fi

cat >.gpu/enter.sh <<'ENTER'
# source me on the GPU machine, from the project root (written by bench/gpu_prepare.sh)
for f in .gpu/debs/*.deb; do dpkg -x "$f" /; done
ldconfig
# NVIDIA's Vulkan driver ships its ICD file here on these machines; the loader does not look there
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f "$icd" ] && export VK_DRIVER_FILES=$icd
if [ ! -x /tmp/bunbin/bun ]; then mkdir -p /tmp/bunbin && xz -T0 -dc .gpu/bun.xz >/tmp/bunbin/bun && chmod +x /tmp/bunbin/bun; fi
export PATH=/tmp/bunbin:$PATH
[ -d node_modules/webgpu ] || tar -xJf .gpu/node_modules.txz
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
bun --version >/dev/null
ENTER

size=$(du -sm .gpu | cut -f1)
echo "gpu_prepare.sh: .gpu is ${size} MiB; with the working tree it must stay under the 64 MiB a run carries" >&2
echo 'gpu_prepare.sh: on the GPU machine (carry [".gpu"]), from the project root: source .gpu/enter.sh && bash bench/gpu.sh' >&2
