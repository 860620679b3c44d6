#!/bin/sh
# make asan: the e2e suite against the ASan build (scripts/build-asan.sh).
# Every QEMU writes its ASan/LSan report to build/asan-logs/<run>/asan.<pid>
# (atexit=1: also its exit stats, so a file means "reached exit, LSan
# ran"); wrappers in <run>/bin log each QEMU started to <run>/procs.
# Then tests/asan_report.py groups and classifies the reports.
# Arguments go to tests/e2e/run.py (e.g. -k 'q35/*').  Left out by
# default: libvirt/* and kvm/*.  libvirt starts QEMU with -daemonize, and
# gcc 12's libasan does not hold its allocator locks across fork(): the
# daemonized child hangs in about 2 of 5 starts on a lock another thread
# held at the fork (not seen without ASan).  kvm/* runs its L2 QEMU inside
# a nested guest, from the L1 kit's plain build (scripts/kvm-l1-kit.sh):
# ASan would only watch the TCG L1 around it.  The cycles scenarios' RSS
# bound is off (E2E_NO_RSS_CHECK): ASan's quarantine keeps freed memory
# on purpose.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ASAN_BDIR=${ASAN_BDIR:-$ROOT/build/qemu-asan}
RUN=$ROOT/build/asan-logs/$(date +%Y%m%d-%H%M%S)
mkdir -p "$RUN/bin"
for a in x86_64 aarch64; do
    cat > "$RUN/bin/qemu-system-$a" <<EOT
#!/bin/sh
echo "\$\$ \$*" >> "$RUN/procs"
exec "$ASAN_BDIR/qemu-system-$a" "\$@"
EOT
    chmod +x "$RUN/bin/qemu-system-$a"
done
# fast_unwind_on_malloc=0: Debian's glib has no frame pointers, and the
# fast unwinder then drops the function that called g_malloc.
export ASAN_OPTIONS="detect_leaks=1:log_path=$RUN/asan:atexit=1:\
fast_unwind_on_malloc=0:${ASAN_EXTRA:-}"
export QEMU_BUILD=$RUN/bin E2E_NO_RSS_CHECK=1
echo "asan: logs in $RUN"
t0=$(date +%s)
rc=0
python3 "$ROOT/tests/e2e/run.py" -k '[!lk]*' "$@" || rc=$?
echo "asan: e2e took $(( $(date +%s) - t0 )) s (exit $rc)"
python3 "$ROOT/tests/asan_report.py" "$RUN" || rc=$?
exit $rc
