#!/bin/sh
# Install our two system emulators under $PREFIX (default /usr/local):
# $PREFIX/bin/qemu-system-x86_64 and qemu-system-aarch64.  The build has no
# modules and no run-time data of its own that these machines need; its
# --firmwarepath is Debian's firmware packages (seabios, ipxe-qemu,
# qemu-system-data, qemu-efi-aarch64), absolute paths that hold from any
# prefix, so the installed emulators need no -L.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BDIR=$ROOT/build/qemu/build
PREFIX=${PREFIX:-/usr/local}
case $PREFIX in /*) ;; *) PREFIX=$(pwd)/$PREFIX ;; esac

mkdir -p "$PREFIX/bin"
for arch in x86_64 aarch64; do
    install -m 755 "$BDIR/qemu-system-$arch" "$PREFIX/bin/"
done
echo "installed qemu-system-x86_64 and qemu-system-aarch64 into $PREFIX/bin"
