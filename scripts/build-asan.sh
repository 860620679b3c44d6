#!/bin/sh
# Configure (once) and build an AddressSanitizer (+ LeakSanitizer) build of
# the assembled tree in build/qemu-asan, next to and independent of
# build/qemu/build, with scripts/build-qemu.sh's options plus ASan; frame
# pointers so that LSan's fast unwinder gives full allocation stacks.
# UBSAN=1 adds --enable-ubsan (reconfigure: delete build/qemu-asan).
# ASAN_TREE / ASAN_BDIR: another source tree / build dir (try a fix).
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export TREE=${ASAN_TREE:-$ROOT/build/qemu}
export BDIR=${ASAN_BDIR:-$ROOT/build/qemu-asan}
ubsan=
[ "${UBSAN:-0}" = 1 ] && ubsan=--enable-ubsan
export CONFIGURE_EXTRA="--enable-asan $ubsan \
--extra-cflags=-fno-omit-frame-pointer ${CONFIGURE_EXTRA:-}"
export TARGETS="qemu-system-x86_64 qemu-system-aarch64"
mkdir -p "$BDIR"
# The tree can change while we compile (quilt pop/push by a concurrent
# session): an object compiled from a half-patched file would then look up
# to date.  If a source changed during the build, recompile what the build
# made (ccache: cheap) until nothing changed meanwhile.
for try in 1 2 3; do
    touch "$BDIR/.build-start"
    sh "$ROOT/scripts/build-qemu.sh"
    changed=$(find "$TREE" -path "$TREE/build" -prune -o -type f \
        -newer "$BDIR/.build-start" \( -name '*.[ch]' -o -name '*.c.inc' \
        -o -name 'trace-events' -o -name '*.json' \) -print | head -1)
    [ -z "$changed" ] && break
    echo "build-asan: $changed changed during the build; again"
    find "$BDIR" -name '*.o' -newer "$BDIR/.build-start" -delete
done
