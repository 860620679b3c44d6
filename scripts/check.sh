#!/bin/sh
# Run every test: QEMU's own qtests for CPU hotplug and the ACPI tables on
# the assembled tree (inside its meson test suite), then our end-to-end
# scenarios with real guests.  Ends with "N passed, N failed[, N skipped]".
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BDIR=$ROOT/build/qemu/build
OUT=$ROOT/build/test-results
mkdir -p "$OUT"
t0=$(date +%s)

echo "== QEMU qtests (meson test in $BDIR)"
QTESTS=${QTESTS:-"qtest-x86_64/cpu-plug-test qtest-x86_64/numa-test
    qtest-aarch64/numa-test qtest-x86_64/bios-tables-test"}
(cd "$BDIR" && meson test --no-rebuild --print-errorlogs \
    --num-processes 2 $QTESTS) > "$OUT/qtest.log" 2>&1
grep -E '^ *[0-9]+/[0-9]+ ' "$OUT/qtest.log"
q_ok=$(sed -n 's/^Ok: *\([0-9]*\)/\1/p' "$OUT/qtest.log")
q_fail=$(sed -n 's/^Fail: *\([0-9]*\)/\1/p' "$OUT/qtest.log")
q_skip=$(sed -n 's/^Skipped: *\([0-9]*\)/\1/p' "$OUT/qtest.log")
q_to=$(sed -n 's/^Timeout: *\([0-9]*\)/\1/p' "$OUT/qtest.log")
if [ -z "$q_ok" ]; then
    echo "qtests did not run:"; tail -20 "$OUT/qtest.log"
    q_ok=0; q_fail=1
fi
q_fail=$(( ${q_fail:-0} + ${q_to:-0} ))
[ "$q_fail" -gt 0 ] && tail -60 "$OUT/qtest.log"

echo "== end-to-end scenarios (real guests)"
python3 "$ROOT/tests/e2e/run.py" --json "$OUT/e2e.json"
e_rc=$?
counts=$(python3 -c 'import json,sys; c=json.load(open(sys.argv[1]))["counts"]
print(c["PASS"], c["FAIL"]+c["XPASS"], c["SKIP"])' "$OUT/e2e.json" 2>/dev/null ||
         echo "0 1 0")
set -- $counts
passed=$(( q_ok + $1 )); failed=$(( q_fail + $2 )); skipped=$(( ${q_skip:-0} + $3 ))
[ $e_rc -ne 0 ] && [ "$2" -eq 0 ] && failed=$((failed + 1))

echo "== done in $(( $(date +%s) - t0 ))s"
if [ "$skipped" -gt 0 ]; then
    echo "$passed passed, $failed failed, $skipped skipped"
else
    echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
