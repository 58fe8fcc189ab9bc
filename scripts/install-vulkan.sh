#!/usr/bin/env bash
# Install a Vulkan driver that Dawn accepts, so WebGPU has a real adapter on a machine without a GPU:
# Mesa's lavapipe (CPU) from Debian 12's bookworm-backports (Mesa >= 24; bookworm's own 22.x lacks
# features Dawn requires) plus the Vulkan loader. The backports suite is added with the URI and
# signing key of the machine's own Debian source, so no mirror address is written here.
# On anything but Debian 12 it prints what to install and exits non-zero.
set -euo pipefail

say() { echo "install-vulkan: $*" >&2; }

codename=$( . /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}" )
if [ "$codename" != "bookworm" ] || ! command -v apt-get >/dev/null; then
  say "this is not Debian 12 (bookworm); install a Vulkan driver yourself:"
  say "  - a GPU: its vendor's Vulkan driver (NVIDIA: the driver plus libvulkan1 and libglvnd's libraries)"
  say "  - no GPU: Mesa >= 24 lavapipe (Debian/Ubuntu package mesa-vulkan-drivers) and the Vulkan loader (libvulkan1)"
  exit 1
fi
if [ "$(id -u)" != 0 ]; then
  say "needs root to run apt-get; run: sudo bash $0"
  exit 1
fi

list=/etc/apt/sources.list.d/bunlm-backports.sources
if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  uri="" key=""
  # deb822 sources (Debian 12's default) first, then the one-line format.
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    # the stanza that carries the plain 'bookworm' suite of Debian's main archive
    read -r uri key < <(awk -v RS='' '/Suites:[^\n]*bookworm([ \n]|$)/ && !/security/ {
        u=""; k="";
        n=split($0, L, "\n");
        for (i=1;i<=n;i++) { if (L[i] ~ /^URIs:/) { split(L[i], a, " "); u=a[2] } if (L[i] ~ /^Signed-By:/) { split(L[i], b, " "); k=b[2] } }
        if (u != "") { print u, k; exit } }' "$f") || true
    [ -n "$uri" ] && break
  done
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1=="deb" && $0 !~ /security/ { for (i=2;i<=NF;i++) if ($i ~ /^(https?|file|mirror):/) { print $i; exit } }' /etc/apt/sources.list)
  fi
  [ -n "$uri" ] || { say "found no Debian source to copy for bookworm-backports"; exit 1; }
  [ -n "$key" ] || key=/usr/share/keyrings/debian-archive-keyring.gpg
  say "adding bookworm-backports from $uri"
  printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: %s\n' "$uri" "$key" > "$list"
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers libvulkan1 >/dev/null
say "installed $(dpkg-query -W -f='mesa-vulkan-drivers ${Version}' mesa-vulkan-drivers)"
