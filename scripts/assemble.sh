#!/bin/sh
# Assemble build/qemu = Debian-patched base + our overlay + patches/series.
# Incremental: the base is unpacked once; overlay files are copied only when
# they differ (so ninja rebuilds only what changed); when patches/ changed
# since the last run, the quilt series is re-applied from the first patch
# that changed.
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

# Series: re-apply from the first patch that differs from what was applied
# (a copy of each applied patch is kept in .applied/), so that editing a
# late patch rebuilds only what it and the patches after it touch.
digest=$(cd "$ROOT/patches" && cat series $(grep -v '^#' series) 2>/dev/null |
         sha256sum | cut -c1-16)
cd "$TREE"
if [ "$(cat .series-digest 2>/dev/null)" != "$digest" ]; then
    keep=
    if [ -d .pc-overlay ] && [ -d .applied ]; then
        for p in $(quilt applied 2>/dev/null); do
            cmp -s "patches/$p" ".applied/$p" || break
            grep -qx "$p" patches/series || break
            keep=$p
        done
        # the kept prefix must also be the start of the new series
        if [ -n "$keep" ]; then
            n=$(quilt applied | grep -nx "$keep" | cut -d: -f1)
            [ "$(quilt applied | head -n "$n")" = \
              "$(grep -v '^#' patches/series | head -n "$n")" ] || keep=
        fi
    fi
    if [ -d .pc-overlay ] && quilt applied >/dev/null 2>&1; then
        if [ -n "$keep" ]; then
            [ "$(quilt top)" = "$keep" ] || quilt pop -f -q "$keep" >/dev/null
        else
            quilt pop -a -f -q >/dev/null
        fi
    fi
    if [ -s patches/series ] && quilt unapplied >/dev/null 2>&1; then
        quilt push -a -q >/dev/null ||
            { echo "assemble: patch series does not apply" >&2; exit 1; }
    fi
    rm -rf .applied && mkdir .applied
    for p in $(quilt applied 2>/dev/null); do cp "patches/$p" .applied/; done
    echo "$digest" > .series-digest
    echo "assemble: series re-applied from after ${keep:-the base}"
fi
echo "assemble: $TREE ready ($(quilt applied 2>/dev/null | wc -l) patches applied)"
