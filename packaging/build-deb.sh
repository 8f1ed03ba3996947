#!/usr/bin/env bash
# prodng's own .deb: wheels of prodng (with its native parts) and of every Python
# dependency, installed offline by the postinst into /opt/prodng/venv with Debian's
# python3; /usr/bin/prodng, the osquery extension and the agent's systemd unit.
# Usage (after scripts/setup.sh): bash packaging/build-deb.sh [OUTDIR]   -> OUTDIR/prodng_VERSION_ARCH.deb
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=$(realpath -m "${1:-build}")
VERSION=$(.venv/bin/python -c 'import prodng; print(prodng.__version__)')
ARCH=$(dpkg --print-architecture)
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
ROOT=$STAGE/prodng
mkdir -p "$ROOT/DEBIAN" "$ROOT/opt/prodng/wheels" "$ROOT/lib/systemd/system" "$ROOT/usr/share/doc/prodng" "$OUT"

.venv/bin/pip wheel -q --no-build-isolation . -w "$ROOT/opt/prodng/wheels"
install -m 0644 packaging/prodng-agent.service packaging/prodng-boot.service "$ROOT/lib/systemd/system/"
install -m 0644 README.md docs/queries.md "$ROOT/usr/share/doc/prodng/"

cat > "$ROOT/DEBIAN/control" <<EOF
Package: prodng
Version: $VERSION
Architecture: $ARCH
Maintainer: prodng <prodng@localhost>
Depends: python3 (>= 3.11), python3 (<< 3.12), python3-venv, libbtrfsutil1, libseccomp2, libcap2,
 btrfs-progs, debootstrap, dnsmasq-base, nftables, iproute2, util-linux, zstd
Section: admin
Priority: optional
Description: hermetic services on Debian hosts, every operation an API call
 prodng runs services in copy-on-write btrfs roots isolated by namespaces and
 cgroups, installs .deb payloads into them, gives them addresses from its own
 DHCP server, and serves every verb as REST and its state as SQL tables.
EOF

cat > "$ROOT/DEBIAN/postinst" <<'EOF'
#!/bin/sh
# The wheels were built with the package: no network needed here.
set -e
if [ "$1" = configure ]; then
    rm -rf /opt/prodng/venv
    python3 -m venv /opt/prodng/venv
    /opt/prodng/venv/bin/pip install -q --no-index --find-links /opt/prodng/wheels prodng
    ln -sf /opt/prodng/venv/bin/prodng /usr/bin/prodng
    ln -sf /opt/prodng/venv/bin/prodng-osquery-extension /usr/bin/prodng-osquery-extension
fi
EOF

cat > "$ROOT/DEBIAN/prerm" <<'EOF'
#!/bin/sh
# Containers are left as they are: they belong to /var/lib/prodng, not to the package.
set -e
rm -f /usr/bin/prodng /usr/bin/prodng-osquery-extension
rm -rf /opt/prodng/venv
EOF
chmod 0755 "$ROOT/DEBIAN/postinst" "$ROOT/DEBIAN/prerm"

dpkg-deb --root-owner-group -Zxz -b "$ROOT" "$OUT/prodng_${VERSION}_${ARCH}.deb" >/dev/null
echo "$OUT/prodng_${VERSION}_${ARCH}.deb"
