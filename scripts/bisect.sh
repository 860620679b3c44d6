#!/bin/sh
# make bisect: build the exported series after every patch, and run the CPU
# hotplug qtests at the end of each topic, as a maintainer applying it
# would.  The commits are those of scripts/series.sh (build/series/repo,
# branch "series"; branches topic-N end each topic).  They are checked out
# one by one into build/bisect/qemu, a git worktree laid out like
# build/qemu, and built incrementally by scripts/build-qemu.sh, so that
# ccache shares objects with the main build.  Prints the time of each step
# and the total; stops at the first patch that does not build or topic
# whose qtests fail, and exits non-zero then.  BISECT_FROM=N resumes at
# patch N (1-based; the ones before it are taken as checked).
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REPO=$ROOT/build/series/repo
W=$ROOT/build/bisect/qemu
LOG=$ROOT/build/bisect/log
t0=$(date +%s)

sh "$ROOT/scripts/series.sh" | tail -n 1
mkdir -p "$LOG"
if [ ! -e "$W/.git" ]; then
    rm -rf "$W"
    git -C "$REPO" worktree prune
    git -C "$REPO" worktree add -q --detach "$W" base
    # QEMU's .gitignore leaves the unpacked subprojects (keycodemapdb,
    # berkeley-softfloat-3, ...) out of git: take them from the base
    # source, or meson would try to download them
    (cd "$(sh "$ROOT/scripts/fetch-qemu.sh")" && tar cf - subprojects) |
        (cd "$W" && tar xf -)
fi

build() { # NAME: build the checked-out tree, log to $LOG/NAME
    targets="qemu-system-x86_64 qemu-system-aarch64 tests/qtest/cpu-plug-test
             tests/qtest/numa-test tests/qtest/bios-tables-test"
    [ -f "$W/tests/qtest/cpu-unplug-test.c" ] &&
        targets="$targets tests/qtest/cpu-unplug-test"
    s=$(date +%s)
    if ! TREE=$W TARGETS="$targets" sh "$ROOT/scripts/build-qemu.sh" \
            > "$LOG/$1" 2>&1; then
        grep -m 20 -B 2 -A 8 'error' "$LOG/$1" || tail -n 30 "$LOG/$1"
        echo "bisect: $1 does not build (log $LOG/$1)"
        exit 1
    fi
    echo "bisect: $1 built in $(( $(date +%s) - s ))s"
}

qtests() { # TOPIC: those qtests of scripts/check.sh that exist by now
    all=$(cd "$W/build" && meson test --no-rebuild --list 2>/dev/null)
    tests=
    for t in qtest-x86_64/cpu-plug-test qtest-x86_64/numa-test \
             qtest-aarch64/cpu-plug-test qtest-aarch64/numa-test \
             qtest-x86_64/cpu-unplug-test qtest-aarch64/cpu-unplug-test; do
        echo "$all" | grep -q " / $t\$" && tests="$tests $t"
    done
    skips=""
    for p in $(grep -v '^#' "$ROOT/scripts/bios-tables-env-fails"); do
        skips="$skips -s $p"
    done
    s=$(date +%s)
    if ! (cd "$W/build" &&
          QTEST_AARCH64_BIOS=/usr/share/qemu-efi-aarch64/QEMU_EFI.fd \
          sh "$ROOT/scripts/qtest-env.sh" meson test --no-rebuild \
              --num-processes 2 --timeout-multiplier 3 $tests &&
          sh "$ROOT/scripts/qtest-env.sh" meson test --no-rebuild \
              --timeout-multiplier 3 --test-args "$skips" \
              qtest-x86_64/bios-tables-test qtest-aarch64/bios-tables-test) > "$LOG/qtests-$1" 2>&1; then
        grep -E '^ *[0-9]+/[0-9]+ ' "$LOG/qtests-$1" || tail -n 30 "$LOG/qtests-$1"
        echo "bisect: qtests fail at the end of topic $1 (log $LOG/qtests-$1)"
        exit 1
    fi
    echo "bisect: topic $1: $(grep -c ' OK ' "$LOG/qtests-$1") qtests OK" \
         "in $(( $(date +%s) - s ))s"
}

from=${BISECT_FROM:-1}
if [ "$from" -le 1 ]; then
    git -C "$W" checkout -q --detach base
    build 0000-base
fi
n=0
for c in $(git -C "$REPO" rev-list --reverse base..series); do
    n=$((n + 1))
    [ "$n" -ge "$from" ] || continue
    git -C "$W" checkout -q --detach "$c"
    build "$(printf %04d "$n")-$(git -C "$REPO" log -1 --format=%f "$c" | cut -c1-60)"
    for b in $(git -C "$REPO" branch --format='%(refname:short)' \
               --points-at "$c" 'topic-*'); do
        qtests "$b"
    done
done
echo "bisect: patches $from to $n built one by one, qtests at each" \
     "topic's end, in $(( $(date +%s) - t0 ))s"
