#!/bin/sh
# make series: write patches/series as `git format-patch` output and check
# that it applies with `git am` onto a git repository of the pinned base.
#
# The repository (build/series/repo) holds Debian's patched source as one
# commit, tagged "base".  Each quilt patch is applied with `git am` (its
# From:/Subject: header and body become the commit), and the overlay files
# it needs are folded into that commit (scripts/series-overlay.map), so that
# the exported patches build without the overlay.  Output:
# build/series/posting/NNNN-*.patch, numbered n/M, with diffstats.  Then a
# second branch from "base" `git am`s the exported files, and QEMU's
# scripts/checkpatch.pl checks each of them.  Exits non-zero on any failure.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$ROOT/build/series
REPO=$OUT/repo
MAP=$ROOT/scripts/series-overlay.map
base=$(sh "$ROOT/scripts/fetch-qemu.sh")
git_() { git -C "$REPO" -c user.name=series -c user.email=series@localhost \
             -c advice.detachedHead=false "$@"; }

if [ "$(cat "$OUT/.base" 2>/dev/null)" != "$base" ]; then
    rm -rf "$OUT"
    mkdir -p "$REPO"
    (cd "$base" && tar cf - --exclude=./.pc --exclude='./.unpacked-*' .) |
        (cd "$REPO" && tar xf -)
    git_ init -q
    git_ add -A
    git_ commit -q -m "Debian qemu source $(basename "$base") (base)"
    git_ tag base
    echo "$base" > "$OUT/.base"
fi

# The quilt series as commits on branch "series"
git_ checkout -q -f -B series base
git_ clean -q -fdx
n=0
for p in $(grep -v '^#' "$ROOT/patches/series"); do
    n=$((n + 1))
    git_ am -q --keep-cr "$ROOT/patches/$p" ||
        { git_ am --abort; echo "series: $p does not apply" >&2; exit 1; }
    folded=0
    for f in $(awk -v p="$p" '$2 == p {print $1}' "$MAP"); do
        mkdir -p "$REPO/$(dirname "$f")"
        cp "$ROOT/$f" "$REPO/$f"
        git_ add "$f"
        folded=1
    done
    [ $folded = 1 ] && git_ commit -q --amend --no-edit
done

rm -rf "$OUT/posting"
git_ format-patch -q --binary --numbered --stat=76 -o "$OUT/posting" \
    base..series
m=$(ls "$OUT/posting" | wc -l)
[ "$m" = "$n" ] || { echo "series: $m files for $n patches" >&2; exit 1; }

# Does the posting apply as a maintainer would apply it?
git_ checkout -q -f -B am-check base
git_ am -q "$OUT"/posting/*.patch ||
    { git_ am --abort; echo "series: git am of the posting failed" >&2; exit 1; }
[ -z "$(git_ diff series am-check)" ] ||
    { echo "series: git am gives another tree than the series" >&2; exit 1; }

bad=0
for f in "$OUT"/posting/*.patch; do
    (cd "$REPO" && ./scripts/checkpatch.pl -q "$f" >/dev/null 2>&1) || {
        echo "series: checkpatch: $(basename "$f")" >&2; bad=1; }
done
git_ checkout -q -f series
[ $bad = 0 ] || exit 1
echo "series: $n patches in $OUT/posting: git am onto the base and" \
     "checkpatch clean"
