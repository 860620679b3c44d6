#!/usr/bin/env python3
"""Soak: many CPU plug/unplug cycles on one guest under CPU load.

The guest keeps a busy loop on CPU 0 and on every CPU it onlines (/init's
`load N`; a loop whose CPU goes away ends).  Cycle i plugs a CPU into slot
i // 2 (mod the free slots: the same slot twice, then another), waits for
the guest to online it, starts a loop on it, unplugs it and waits for the
guest's remove and for DEVICE_DELETED.  QEMU's RSS and thread count are
taken after cycle 50 (translation cache and allocator warmed up) and at
the end.

Fails (exit 1) if a cycle fails, if RSS grows by more than --bound-kib
between cycle 50 and the end (default 8 MiB, i.e. more than 18 KiB a cycle
over 450 cycles, far less than a leaked vCPU costs), or if the thread count
grows.

TCG's translation cache is not a leak but does grow RSS: code is never
freed until the buffer (-accel tcg,tb-size, 1 GiB by default) is full,
and the guest patches its own code when CPUs come and go, so code is
translated again and RSS follows in 2 MiB huge-page steps.  The soak
therefore runs with a small buffer (--tb-size, 32 MiB) that is full and
flushed before cycle 50, so that its pages are all resident by then and
the bound measures everything else; --tb-size 0 keeps QEMU's default and
shows the cache's growth.  The translated code size and the flush count
(HMP info jit) are printed beside RSS.  Writes build/soak-<machine>.json.

usage: soak.py [--machine q35|pc|microvm|virt] [--cycles 500]
               [--bound-kib 8192] [--tb-size 32]
"""
import argparse
import json
import re
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
from vm import VM, ROOT, MACHINES, pick_accel  # noqa: E402
from hotplug import plug, unplug, slots, load  # noqa: E402

WARM = 50


def loads(vm):
    """Guest CPUs on which a load loop runs (one entry per loop)."""
    out = vm.guest("for p in $(ps | grep '[:] load' | cut -c1-6); do "
                   "cut -d' ' -f39 /proc/$p/stat 2>/dev/null; done")
    return sorted(int(x) for x in out if x.strip().isdigit())


def jit(vm):
    """(KiB of translated code, TB flushes) of TCG (HMP info jit)."""
    out = vm.hmp.cmd("info jit")
    code = re.search(r"gen code size\s+(\d+)/", out)
    flushes = re.search(r"TB flush count\s+(\d+)", out)
    return (int(code.group(1)) // 1024 if code else -1,
            int(flushes.group(1)) if flushes else -1)


def stats(xs):
    return {"mean": statistics.mean(xs), "median": statistics.median(xs),
            "max": max(xs)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--machine", default="q35",
                    choices=("q35", "pc", "microvm", "virt"))
    ap.add_argument("--cycles", type=int, default=500)
    ap.add_argument("--bound-kib", type=int, default=8192,
                    help="allowed RSS growth after cycle %d" % WARM)
    ap.add_argument("--tb-size", type=int, default=32,
                    help="TCG code buffer in MiB (0: QEMU's default)")
    ap.add_argument("--json")
    a = ap.parse_args()
    assert a.cycles > WARM, "--cycles must exceed %d" % WARM
    m = a.machine
    out = a.json or os.path.join(ROOT, "build", "soak-%s.json" % m)
    lat = {"online": [], "removed": [], "deleted": [], "cycle": []}
    t0 = time.monotonic()
    accel = pick_accel(MACHINES[m][0])
    if accel == "tcg" and a.tb_size:
        accel += ",tb-size=%d" % a.tb_size
    with VM(m, smp="1,maxcpus=4", accel=accel) as vm:
        vm.wait_ready()
        free = [s["props"] for s in reversed(slots(vm))
                if "qom-path" not in s]
        load(vm, 0)
        start = vm.pid_stats()
        print("soak %s: accel=%s, %d cycles over slots %s, load on every "
              "online CPU; RSS %d KiB, %d threads at start" % (
                  m, vm.accel, a.cycles, free, start[0], start[1]),
              flush=True)
        warm = None
        t_loop = time.monotonic()
        for i in range(a.cycles):
            props = free[(i // 2) % len(free)]
            dev = "soak%d" % i
            tc = time.monotonic()
            try:
                p = plug(vm, dev, props)
                load(vm, p["cpu"])
                u = unplug(vm, dev, p["cpu"], props)
            except Exception as e:
                print("soak %s: cycle %d (%s, %s) failed: %s: %s\n%s" % (
                    m, i + 1, dev, props, type(e).__name__, e,
                    "\n".join(vm.text().split("\n")[-15:])), flush=True)
                return 1
            lat["cycle"].append(time.monotonic() - tc)
            lat["online"].append(p["online"])
            lat["removed"].append(u["removed"])
            lat["deleted"].append(u["deleted"])
            if i + 1 == WARM:
                warm = vm.pid_stats()
                jit_warm = jit(vm)
            if (i + 1) % 50 == 0:
                rss, thr = vm.pid_stats()
                print("  cycle %3d: RSS %d KiB, %d threads, translated code "
                      "%d KiB (%d flushes), %.2f s/cycle" % (
                          i + 1, rss, thr, *jit(vm),
                          statistics.mean(lat["cycle"][-50:])), flush=True)
        t_end = time.monotonic()
        end = vm.pid_stats()
        jit_end = jit(vm)
        left = loads(vm)
        for _ in range(10):              # a loop may still be on its way out
            if left == [0]:
                break
            time.sleep(0.5)
            left = loads(vm)
        view = vm.cpus()
        st = vm.qmp.cmd("query-status")["status"]
        accel = vm.accel
    total = time.monotonic() - t0
    n = a.cycles - WARM
    delta = end[0] - warm[0]
    res = {"machine": m, "accel": accel, "cycles": a.cycles,
           "slots": free, "rss_kib_start": start[0],
           "rss_kib_after_%d" % WARM: warm[0], "rss_kib_end": end[0],
           "rss_delta_kib": delta, "bytes_per_cycle": delta * 1024 // n,
           "bound_kib": a.bound_kib,
           "tb_size_mib": a.tb_size,
           "jit_kib_after_%d" % WARM: jit_warm[0], "jit_kib_end": jit_end[0],
           "tb_flushes_after_%d" % WARM: jit_warm[1],
           "tb_flushes_end": jit_end[1], "threads_start": start[1],
           "threads_after_%d" % WARM: warm[1], "threads_end": end[1],
           "latency_s": {k: stats(v) for k, v in lat.items()},
           "cycles_time_s": t_end - t_loop,
           "total_s": total, "guest_loads_at_end": left,
           "guest_online_at_end": sorted(view["online"]), "status": st}
    for k in ("online", "removed", "deleted", "cycle"):
        x = res["latency_s"][k]
        print("  %-8s mean %.3f s  median %.3f s  max %.3f s" % (
            {"online": "add->online", "removed": "del->guest removed",
             "deleted": "del->DEVICE_DELETED", "cycle": "cycle"}[k],
            x["mean"], x["median"], x["max"]))
    print("  %d cycles in %.0f s, total %.0f s; guest at end: online %s, load loops on CPUs %s, "
          "VM %s" % (a.cycles, t_end - t_loop, total, res["guest_online_at_end"], left, st))
    print("soak %s: rss after %d = %d KiB, after %d = %d KiB, delta = %d KiB "
          "(%d bytes/cycle), threads %d -> %d" % (
              m, WARM, warm[0], a.cycles, end[0], delta,
              res["bytes_per_cycle"], warm[1], end[1]), flush=True)
    print("soak %s: TCG code buffer %s; translated code after %d = %d KiB "
          "(%d flushes), after %d = %d KiB (%d flushes)" % (
              m, "%d MiB" % a.tb_size if a.tb_size else "QEMU's default",
              WARM, jit_warm[0], jit_warm[1], a.cycles, jit_end[0],
              jit_end[1]))
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(res, f, indent=1)
    print("wrote %s" % out)
    bad = []
    if delta > a.bound_kib:
        bad.append("RSS grew %d KiB, bound %d KiB" % (delta, a.bound_kib))
    if end[1] > warm[1]:
        bad.append("threads grew %d -> %d" % (warm[1], end[1]))
    if view["online"] != {0} or left != [0] or st != "running":
        bad.append("guest/VM not back to CPU 0 with its load: online %s, "
                   "loads %s, status %s" % (view["online"], left, st))
    for b in bad:
        print("soak %s: FAIL: %s" % (m, b))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
