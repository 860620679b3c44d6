#!/bin/sh
# List edits in build/qemu that the repo would lose: files that differ from
# the Debian base and are neither overlay files nor covered by a refreshed
# quilt patch of our series.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TREE=$ROOT/build/qemu
export QUILTRC=$ROOT/scripts/quiltrc
[ -f "$TREE/.base" ] || { echo "status: no assembled tree (make qemu)"; exit 1; }
BASE=$(cat "$TREE/.base")
cd "$TREE"

lost=0
# Files the series tracks, and unrefreshed changes in them.
tracked=$(mktemp)
trap 'rm -f "$tracked"' EXIT
for p in $(quilt applied 2>/dev/null || true); do
    quilt files "$p" >> "$tracked"
    if [ -n "$(quilt diff -z -P "$p" 2>/dev/null)" ]; then
        echo "unrefreshed: $p (run: quilt refresh $p)"
        lost=1
    fi
done
# Everything else that differs from the base.
diff -rq "$BASE" . -x build -x .pc -x .pc-overlay -x patches \
    -x .base -x .series-digest -x .applied -x '.unpacked-*' 2>/dev/null |
while read -r line; do
    case "$line" in
    "Only in $BASE"*) f=$(echo "$line" | sed "s|^Only in $BASE/*\([^:]*\): |\1/|");
                      echo "deleted: ${f#/}"; continue ;;
    "Only in "*)      f=$(echo "$line" | sed 's|^Only in \./*\([^:]*\): |\1/|;s|^Only in \.: ||') ;;
    *)                f=$(echo "$line" | sed 's|^Files .* and \./\(.*\) differ$|\1|') ;;
    esac
    f=${f#/}
    if [ -e "$ROOT/$f" ] && cmp -s "$ROOT/$f" "$f"; then
        continue                                    # overlay file
    fi
    if grep -qxF "$f" "$tracked"; then
        continue                                    # in a quilt patch
    fi
    if [ -e "$ROOT/$f" ]; then
        echo "overlay differs: $f (copy it back to the repo or re-run assemble)"
    else
        echo "untracked edit: $f (quilt add it to a patch, or add it to the overlay)"
    fi
done | tee /dev/stderr | grep -q . && lost=1
[ $lost = 0 ] && echo "status: nothing in build/qemu would be lost"
exit $lost
