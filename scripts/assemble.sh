#!/bin/sh
# Assemble build/qemu = Debian-patched base + our overlay + patches/series.
# Incremental: the base is unpacked once; overlay files are copied only when
# they differ (so ninja rebuilds only what changed); the quilt series is
# re-applied from scratch only when patches/ changed since the last run.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TREE=$ROOT/build/qemu
export QUILTRC=$ROOT/scripts/quiltrc
OVERLAY_DIRS="hw include qapi docs tests/qtest tests/data tests/functional"

base=$(sh "$ROOT/scripts/fetch-qemu.sh")
if [ ! -f "$TREE/.base" ] || [ "$(cat "$TREE/.base")" != "$base" ]; then
    echo "assemble: unpacking base $base into $TREE"
    rm -rf "$TREE"
    mkdir -p "$TREE"
    (cd "$base" && tar cf - --exclude=./.pc .) | (cd "$TREE" && tar xf -)
    echo "$base" > "$TREE/.base"
fi
ln -sfn "$ROOT/patches" "$TREE/patches"

# Overlay: new files we own, at their QEMU paths.
for d in $OVERLAY_DIRS; do
    [ -d "$ROOT/$d" ] || continue
    (cd "$ROOT" && find "$d" -type f) | while read -r f; do
        if ! cmp -s "$ROOT/$f" "$TREE/$f"; then
            mkdir -p "$(dirname "$TREE/$f")"
            cp "$ROOT/$f" "$TREE/$f"
            echo "assemble: overlay $f"
        fi
    done
done

# Series: compare a digest of patches/ with the one last applied.
digest=$(cd "$ROOT/patches" && cat series $(grep -v '^#' series) 2>/dev/null |
         sha256sum | cut -c1-16)
cd "$TREE"
if [ "$(cat .series-digest 2>/dev/null)" != "$digest" ]; then
    if [ -d .pc-overlay ] && quilt applied >/dev/null 2>&1; then
        quilt pop -a -q >/dev/null
    fi
    if [ -s patches/series ]; then
        quilt push -a -q || { echo "assemble: patch series does not apply" >&2; exit 1; }
    fi
    echo "$digest" > .series-digest
fi
echo "assemble: $TREE ready ($(quilt applied 2>/dev/null | wc -l) patches applied)"
