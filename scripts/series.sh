#!/bin/sh
# make series: write patches/series as `git format-patch` output, one
# posting per topic, and check that it applies with `git am` onto a git
# repository of the pinned base.
#
# The repository (build/series/repo) holds Debian's patched source as one
# commit, tagged "base".  Each quilt patch is applied with `git am` (its
# From:/Subject: header and body become the commit), and the overlay files
# it needs are folded into that commit (scripts/series-overlay.map), so that
# the exported patches build without the overlay.  A "# topic: NAME" line
# in patches/series starts a topic; each topic is written to
# build/series/posting/N-NAME/ with its cover letter (subject and text from
# patches/cover/NAME.txt, shortlog and diffstat from git), numbered n/M,
# with diffstats and base-commit/prerequisite-patch-id trailers naming the
# topics it builds on.  Branch "topic-N" ends each topic (scripts/bisect.sh
# uses them).  Then a second branch from "base" `git am`s every topic in
# order, and QEMU's scripts/checkpatch.pl checks each patch.  Exits
# non-zero on any failure.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$ROOT/build/series
REPO=$OUT/repo
MAP=$ROOT/scripts/series-overlay.map
base=$(sh "$ROOT/scripts/fetch-qemu.sh")
git_() { git -C "$REPO" -c user.name="vCPU hotplug team" \
             -c user.email=vcpu-hotplug@example.org \
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

# The quilt series as commits on branch "series", a branch per topic end
git_ checkout -q -f -B series base
git_ clean -q -fdx
for b in $(git_ for-each-ref --format='%(refname:short)' 'refs/heads/topic-*'); do
    git_ branch -q -D "$b"
done
n=0 t=0
topics=
while read -r p; do
    case $p in
    "# topic: "*)
        [ $t = 0 ] || git_ branch -q -f "topic-$t" HEAD
        t=$((t + 1))
        topics="$topics $t:${p#\# topic: }"
        continue ;;
    "#"*|"") continue ;;
    esac
    [ $t != 0 ] || { echo "series: $p comes before any topic" >&2; exit 1; }
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
done < "$ROOT/patches/series"
git_ branch -q -f "topic-$t" HEAD

# One posting per topic, based on the topics before it
rm -rf "$OUT/posting"
prev=base m=0
for tt in $topics; do
    i=${tt%%:*} name=${tt#*:}
    cover=$ROOT/patches/cover/$name.txt
    [ -f "$cover" ] || { echo "series: no cover letter $cover" >&2; exit 1; }
    git_ config "branch.topic-$i.description" "$(cat "$cover")"
    git_ format-patch -q --binary --numbered --stat=76 --cover-letter \
        --cover-from-description=subject --base=base \
        -o "$OUT/posting/$i-$name" "$prev..topic-$i"
    k=$(ls "$OUT/posting/$i-$name" | grep -vc '^0000-')
    echo "series: topic $i $name: $k patches"
    m=$((m + k)) prev=topic-$i
done
[ "$m" = "$n" ] || { echo "series: $m files for $n patches" >&2; exit 1; }

# Does the posting apply as a maintainer would apply it, topic by topic?
git_ checkout -q -f -B am-check base
for d in "$OUT"/posting/*/; do
    git_ am -q $(ls "$d"*.patch | grep -v '/0000-cover-letter.patch$') ||
        { git_ am --abort; echo "series: git am of $d failed" >&2; exit 1; }
done
[ -z "$(git_ diff series am-check)" ] ||
    { echo "series: git am gives another tree than the series" >&2; exit 1; }

bad=0
for f in $(ls "$OUT"/posting/*/*.patch | grep -v '/0000-cover-letter.patch$'); do
    (cd "$REPO" && ./scripts/checkpatch.pl -q "$f" >/dev/null 2>&1) || {
        echo "series: checkpatch: $f" >&2; bad=1; }
done
grep -l '\*\*\* SUBJECT HERE\|\*\*\* BLURB HERE' "$OUT"/posting/*/0000-* &&
    { echo "series: a cover letter is the template" >&2; bad=1; }
git_ checkout -q -f series
[ $bad = 0 ] || exit 1
echo "series: $n patches in $t topics in $OUT/posting: git am onto the" \
     "base and checkpatch clean"
