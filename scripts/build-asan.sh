#!/bin/sh
# Configure (once) and build an AddressSanitizer (+ LeakSanitizer) build of
# the assembled tree in build/qemu-asan, next to and independent of
# build/qemu/build.  Same targets and options as build-qemu.sh; frame
# pointers so that LSan's fast unwinder gives full allocation stacks.
# UBSAN=1 adds --enable-ubsan (reconfigure: delete build/qemu-asan).
# ASAN_TREE / ASAN_BDIR: another source tree / build dir (try a fix).
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TREE=${ASAN_TREE:-$ROOT/build/qemu}
BDIR=${ASAN_BDIR:-$ROOT/build/qemu-asan}
export PATH=/usr/lib/ccache:$PATH
export CCACHE_DIR=${CCACHE_DIR:-/var/cache/vcpu-hotplug-ccache}
export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-5G}
export CCACHE_BASEDIR=$ROOT CCACHE_NOHASHDIR=1

if [ ! -f "$BDIR/build.ninja" ]; then
    mkdir -p "$BDIR"
    ubsan=
    [ "${UBSAN:-0}" = 1 ] && ubsan=--enable-ubsan
    (cd "$BDIR" && "$TREE/configure" --python=/usr/bin/python3 \
        --target-list=x86_64-softmmu,aarch64-softmmu \
        --disable-docs --disable-rust --disable-user --disable-tools \
        --disable-guest-agent --disable-install-blobs --disable-werror \
        --enable-asan $ubsan --extra-cflags=-fno-omit-frame-pointer \
        --firmwarepath=/usr/share/qemu:/usr/share/seabios:/usr/lib/ipxe/qemu:/usr/share/qemu-efi-aarch64 \
        ${CONFIGURE_EXTRA:-})
fi
cd "$BDIR"
# The tree can change while we compile (quilt pop/push by a concurrent
# session): an object compiled from a half-patched file would then look up
# to date.  If a source changed during the build, recompile what the build
# made (ccache: cheap) until nothing changed meanwhile.
for try in 1 2 3; do
    touch .build-start
    ninja ${NINJA_ARGS:-} qemu-system-x86_64 qemu-system-aarch64
    changed=$(find "$TREE" -path "$TREE/build" -prune -o -type f \
        -newer .build-start \( -name '*.[ch]' -o -name '*.c.inc' \
        -o -name 'trace-events' -o -name '*.json' \) -print | head -1)
    [ -z "$changed" ] && break
    echo "build-asan: $changed changed during the build; again"
    find . -name '*.o' -newer .build-start -delete
done
