#!/bin/sh
# Cross-compile the assembled tree (build/qemu) into an arm64
# qemu-system-aarch64 for the nested-KVM arm64 L1
# (scripts/kvm-l1-kit-arm64.sh): there it runs the L2 test guest with
# -accel kvm.  A build dir
# of its own, build/qemu-arm64, outside build/qemu (quilt re-assembles
# that tree when patches change).  Small: aarch64-softmmu only, no
# optional features but KVM and libfdt, and KVM-only (--disable-tcg, as
# QEMU's own cross-arm64-kvm-only CI job): L1 runs it with -accel kvm
# only.  ARM64_TCG=1 builds TCG in too.  ccache as scripts/build-qemu.sh
# sets it up.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TREE=${TREE:-$ROOT/build/qemu}
BDIR=${ARM64_BDIR:-$ROOT/build/qemu-arm64}
export PATH=/usr/lib/ccache:$PATH
export CCACHE_DIR=${CCACHE_DIR:-/var/cache/vcpu-hotplug-ccache}
export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-5G}
export CCACHE_BASEDIR=$ROOT CCACHE_NOHASHDIR=1

[ -x "$TREE/configure" ] ||
    { echo "build-arm64: no $TREE: make qemu" >&2; exit 1; }
tcg=--disable-tcg
[ "${ARM64_TCG:-0}" = 1 ] && tcg=--enable-tcg
if [ ! -f "$BDIR/build.ninja" ]; then
    # bookworm's libfdt-dev cannot be installed for two architectures:
    # link the arm64 libfdt.so.1 (libfdt1:arm64) under its link name.
    mkdir -p "$BDIR/fdt"
    ln -sf /usr/lib/aarch64-linux-gnu/libfdt.so.1 "$BDIR/fdt/libfdt.so"
    (cd "$BDIR" && "$TREE/configure" --python=/usr/bin/python3 \
        --cross-prefix=aarch64-linux-gnu- --target-list=aarch64-softmmu \
        --without-default-features --enable-kvm $tcg --enable-fdt=system \
        --extra-ldflags="-L$BDIR/fdt" \
        --disable-docs --disable-rust --disable-user --disable-tools \
        --disable-guest-agent --disable-install-blobs --disable-werror \
        --firmwarepath=/usr/share/qemu-efi-aarch64:/usr/share/qemu)
fi
cd "$BDIR"
ninja ${NINJA_ARGS:-} qemu-system-aarch64
