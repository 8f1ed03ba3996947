#!/usr/bin/env bash
# Install everything prodng needs on a Debian 12 host, as root: apt packages,
# a venv in .venv with prodng (and its native parts) installed editable.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  debootstrap btrfs-progs libbtrfsutil-dev libcap-dev libseccomp-dev libffi-dev
  gcc libc6-dev make pkg-config python3-dev python3-venv util-linux iproute2 procps
  dnsmasq-base nftables runc bubblewrap dpkg-dev ca-certificates curl openssl shellcheck zstd
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "+ apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip 'setuptools>=61' wheel 'cffi>=1.15'
.venv/bin/pip install -q --no-build-isolation -e '.[test]'
.venv/bin/python -c 'import prodng._native, btrfsutil, prctl' \
  && test -x prodng/libexec/prodng-shim && test -x prodng/libexec/prodng-exec \
  && echo "prodng installed: $(pwd)/.venv/bin/prodng"
