#!/bin/sh
# Run every test: the series exported as a posting (git am onto the base,
# checkpatch; one check), QEMU's own qtests for CPU hotplug and the ACPI
# tables on the assembled tree (inside its meson test suite), then our
# end-to-end scenarios with real guests.  Ends with "N passed, N failed[,
# N skipped]".
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BDIR=$ROOT/build/qemu/build
OUT=$ROOT/build/test-results
mkdir -p "$OUT"
t0=$(date +%s)

echo "== the series as a posting (scripts/series.sh)"
s_ok=0 s_fail=0
if sh "$ROOT/scripts/series.sh" > "$OUT/series.log" 2>&1; then
    s_ok=1
else
    s_fail=1
fi
tail -3 "$OUT/series.log"

echo "== QEMU qtests (meson test in $BDIR)"
echo "   under TCG: this machine's /dev/kvm is a nested KVM without SMM,"
echo "   whose tables differ from a real KVM host's (scripts/qtest-env.sh)"
q_ok=0 q_fail=0 q_skip=0
qtests() { # LOG [meson test args...]: run, print results, add up counts
    log=$OUT/$1; shift
    (cd "$BDIR" && sh "$ROOT/scripts/qtest-env.sh" meson test --no-rebuild \
        --print-errorlogs --num-processes 2 --timeout-multiplier 3 "$@") \
        > "$log" 2>&1
    grep -E '^ *[0-9]+/[0-9]+ ' "$log"
    ok=$(sed -n 's/^Ok: *\([0-9]*\).*/\1/p' "$log")
    if [ -z "$ok" ]; then
        echo "qtests did not run:"; tail -20 "$log"
        q_fail=$((q_fail + 1)); return
    fi
    for k in Fail Timeout; do
        n=$(sed -n "s/^$k: *\([0-9]*\).*/\1/p" "$log")
        q_fail=$((q_fail + ${n:-0}))
    done
    n=$(sed -n 's/^Skipped: *\([0-9]*\).*/\1/p' "$log")
    q_ok=$((q_ok + ok)); q_skip=$((q_skip + ${n:-0}))
    grep -q '^Fail: *[1-9]\|^Timeout: *[1-9]' "$log" && tail -60 "$log"
    return 0
}
# The virt case that boots UEFI firmware takes it from here.
export QTEST_AARCH64_BIOS=/usr/share/qemu-efi-aarch64/QEMU_EFI.fd
qtests qtest.log qtest-x86_64/cpu-plug-test qtest-x86_64/cpu-unplug-test \
    qtest-x86_64/numa-test qtest-aarch64/cpu-unplug-test \
    qtest-aarch64/cpu-plug-test qtest-aarch64/numa-test
# bios-tables-test proves that the default pc/q35/virt tables did not
# change, and checks the new shapes (.cphp on x86, .cpuhp on virt).
# Some of its cases fail here on the unpatched base as well, because of
# Debian's firmware, not of QEMU's tables: skip them by name (the list and
# why: scripts/bios-tables-env-fails) and count them as skipped.
skips=""
for p in $(grep -v '^#' "$ROOT/scripts/bios-tables-env-fails"); do
    skips="$skips -s $p"
done
qtests bios-tables.log --test-args "$skips" qtest-x86_64/bios-tables-test \
    qtest-aarch64/bios-tables-test
# meson keeps the subtests' TAP lines in its own log
n=$(grep -c 'SKIP by request' "$BDIR/meson-logs/testlog.txt" || true)
[ "$n" -gt 0 ] && echo "   skipped $n bios-tables-test cases that fail on" \
    "the unpatched base too, because of Debian's firmware" \
    "(scripts/bios-tables-env-fails)"
q_skip=$((q_skip + n))

echo "== end-to-end scenarios (real guests)"
# The kvm/* scenarios boot a nested L1 guest that carries this build of
# QEMU (scripts/kvm-l1-kit.sh rebuilds it when QEMU changed); the arm64
# L1 carries an arm64 build of the same tree (build/qemu-arm64).  Without
# a kit they fail, saying so; a stale one must not stand in for it.
KIT=${KIT:-/var/cache/vcpu-hotplug/kit}
sh "$ROOT/scripts/kvm-l1-kit.sh" >/dev/null || rm -f "$KIT/initrd-l1.img"
echo "   arm64 QEMU for the arm64 L1 (scripts/build-arm64.sh," \
    "log $OUT/build-arm64.log)"
if ! sh "$ROOT/scripts/build-arm64.sh" > "$OUT/build-arm64.log" 2>&1; then
    tail -20 "$OUT/build-arm64.log"
    rm -f "$KIT/initrd-l1-arm64.img"
elif ! sh "$ROOT/scripts/kvm-l1-kit-arm64.sh" >/dev/null; then
    rm -f "$KIT/initrd-l1-arm64.img"
fi
python3 "$ROOT/tests/e2e/run.py" --json "$OUT/e2e.json"
e_rc=$?
counts=$(python3 -c 'import json,sys; c=json.load(open(sys.argv[1]))["counts"]
print(c["PASS"], c["FAIL"]+c["XPASS"], c["SKIP"])' "$OUT/e2e.json" 2>/dev/null ||
         echo "0 1 0")
set -- $counts
passed=$(( s_ok + q_ok + $1 )); failed=$(( s_fail + q_fail + $2 ))
skipped=$(( q_skip + $3 ))
[ $e_rc -ne 0 ] && [ "$2" -eq 0 ] && failed=$((failed + 1))

echo "== done in $(( $(date +%s) - t0 ))s"
if [ "$skipped" -gt 0 ]; then
    echo "$passed passed, $failed failed, $skipped skipped"
else
    echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
