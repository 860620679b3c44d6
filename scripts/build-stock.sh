#!/bin/sh
# Build stock QEMU 10.0 in build/qemu-stock: the same Debian base as
# build/qemu, but without our overlay files and patches/series, with
# scripts/build-qemu.sh's options and ccache (the first build compiles
# most files again: our series changes headers that nearly all include).
# tests/e2e/test_compat.py checks against it that released machine types
# keep stock 10.0's guest ABI and migration stream.  Incremental: the base
# is unpacked again only when it changed, ninja does the rest.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export TREE="$ROOT/build/qemu-stock"
export BDIR="$TREE/build"
export TARGETS="qemu-system-x86_64 qemu-system-aarch64"
base=$(sh "$ROOT/scripts/fetch-qemu.sh")
if [ "$(cat "$TREE/.base" 2>/dev/null)" != "$base" ]; then
    echo "build-stock: unpacking base $base into $TREE"
    rm -rf "$TREE"
    cp -a "$base" "$TREE"
    rm -rf "$TREE/.pc"              # Debian's quilt state: its patches stay
    echo "$base" > "$TREE/.base"
fi
sh "$ROOT/scripts/build-qemu.sh"
echo "build-stock: $BDIR ready"
