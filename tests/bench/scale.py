#!/usr/bin/env python3
"""QEMU's own cost of vCPU hot-plug as the vCPU count grows, side by side
for stock QEMU 10.0 (build/qemu-stock/build, STOCK_BUILD overrides) and
ours (build/qemu/build, QEMU_BUILD overrides).  Prints a table per
machine (stock | ours | ours/stock) and writes JSON (default
build/scale.json).  Figures, not assertions; what a build cannot do is
recorded as "n/a: <error>".

  plug   -S (prelaunch), -smp 1,maxcpus=--max: time each QMP device_add
         round trip over all free slots in order; first and last eighth
         mean, median, last/first, total (no unplug: nothing can eject)
  rss    QEMU RSS before and after those plugs, per plugged vCPU
  pci    q35 only, -S: with 1, 64 and 254 vCPUs (plugged in prelaunch), a
         memory transaction that is not about CPUs: pci-testdev's BAR0 set
         to 0xfe000000, then its memory decoding (command register bit 1)
         toggled 50 times on and off through HMP port I/O (config
         mechanism #1: o /w 0xcf8 <address>, o /h 0xcfc <value>);
         median HMP round trip per toggle, QEMU's CPU time per toggle
         (all threads, from /proc, its idle burn subtracted: less
         sensitive than wall time to other load on the host), and the
         round trip of a write that changes nothing (the HMP baseline)
  unplug q35 only, -S: every slot plugged, ICH9's ACPI CPU hotplug block
         switched to its modern registers (cpu-hotplug-legacy=off, what
         the guest's AML does at boot), then for each CPU, last plugged
         first: device_del, and the guest's part done through HMP port
         I/O as its _EJ0 and _OST would (select, eject, _OST eject
         success); time from the eject write to DEVICE_DELETED (QEMU's
         cost of completing an unplug), first and last eighth, median
  burst  running guest, -smp 1,maxcpus=64 (or --max): 63 device_add back
         to back; time to the last QMP return and until the guest has all
         64 online
  boot   guest boot time with -smp --max (all CPUs cold-plugged)
  kvm    with --kvm MACHINES: plug and rss again under real KVM, nested
         (tests/e2e/nested.py, -cpu host), for ours only (the L1 guest
         carries our build)

usage: scale.py [--machines q35,microvm,virt] [--builds stock,ours]
                [--skip plug,rss,pci,burst,boot] [--max 255] [--json FILE]
                [--kvm q35,microvm,virt]
"""
import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
from vm import VM, ROOT, QEMU_BUILD, cpu_driver  # noqa: E402
from qmp import QMPError                          # noqa: E402
from bench import free_slots                      # noqa: E402
from hotplug import slots                         # noqa: E402

BUILDS = {"stock": os.environ.get("STOCK_BUILD", os.path.join(
    ROOT, "build/qemu-stock/build")), "ours": QEMU_BUILD}
PARTS = ("plug", "rss", "pci", "unplug", "burst", "boot")
PCI_ADDR = 5                        # -device pci-testdev,addr=05.0
BAR = 0xfe000000                    # unused MMIO below the IOAPIC
CPUHP = 0xcd8                       # ICH9's ACPI CPU hotplug registers


def add_all(vm, slots, first_id=0):
    """device_add each slot; return the QMP round trips in seconds."""
    times = []
    for i, props in enumerate(slots, first_id):
        t0 = time.perf_counter()
        vm.qmp.cmd("device_add", driver=cpu_driver(vm.machine, vm.cpu),
                   id="sc%d" % i, **props)
        times.append(time.perf_counter() - t0)
    return times


def settled_rss(vm):
    """RSS in KiB once QEMU's RCU thread has freed and malloc_trim()ed
    what it had pending (right after start RSS still drops)."""
    time.sleep(2)
    return vm.pid_stats()[0]


def eighths(t):
    e = max(1, len(t) // 8)
    first, last = statistics.mean(t[:e]), statistics.mean(t[-e:])
    return {"cpus": len(t), "first_eighth_ms": first * 1e3,
            "last_eighth_ms": last * 1e3,
            "median_ms": statistics.median(t) * 1e3,
            "last_first": last / first, "total_s": sum(t)}


def plug(info, m, build, maxcpus):
    if build == "kvm":
        from nested import NestedVM
        vm = NestedVM("kvm/" + m, smp="1,maxcpus=%d" % maxcpus, paused=True,
                      mem="1G", cpu="host")
    else:
        vm = VM(m, smp="1,maxcpus=%d" % maxcpus, paused=True, mem="2G",
                qemu_build=build)
    with vm:
        info["accel"] = vm.accel
        free = free_slots(vm)
        rss0 = settled_rss(vm)
        t = add_all(vm, free)
        rss1 = settled_rss(vm)
    return dict(eighths(t), rss_kib_before=rss0, rss_kib_after=rss1,
                rss_kib_per_cpu=(rss1 - rss0) / len(t))


def pci_out(vm, size, port, val):
    """One HMP port write (size h: 16 bits, w: 32); returns its round
    trip in seconds."""
    t0 = time.perf_counter()
    out = vm.hmp.cmd("o /%s 0x%x 0x%x" % (size, port, val))
    t = time.perf_counter() - t0
    if out:
        raise RuntimeError("HMP o printed %r" % out)
    return t


def pci_cfg(vm, reg):
    """Point config mechanism #1 at pci-testdev's register reg."""
    pci_out(vm, "w", 0xcf8, 0x80000000 | PCI_ADDR << 11 | reg)


def cpu_seconds(vm):
    """User + system CPU time of the whole QEMU process (all threads)."""
    with open("/proc/%d/stat" % vm.proc.pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_cpu(vm):
    """CPU seconds per second QEMU burns with nothing to do."""
    c0 = cpu_seconds(vm)
    time.sleep(1)
    return cpu_seconds(vm) - c0


def pci(info, m, build, counts):
    res = {}
    with VM(m, smp="1,maxcpus=%d" % (max(counts) + 1), paused=True,
            mem="2G", devices=["pci-testdev,addr=%02x.0" % PCI_ADDR],
            qemu_build=build) as vm:
        info["accel"] = vm.accel
        free = free_slots(vm)
        pci_cfg(vm, 0x10)
        pci_out(vm, "w", 0xcfc, BAR)
        pci_cfg(vm, 0x04)
        pci_out(vm, "h", 0xcfc, 2)      # check that the BAR really maps
        if "%016x" % BAR not in vm.hmp.cmd("info mtree -f"):
            raise RuntimeError("pci-testdev BAR0 not mapped at 0x%x" % BAR)
        pci_out(vm, "h", 0xcfc, 0)
        have = 1
        for n in counts:
            add_all(vm, free[have - 1:n - 1], have)
            have = n
            c0 = cpu_seconds(vm)
            toggle = [pci_out(vm, "h", 0xcfc, v) for _ in range(50)
                      for v in (2, 0)]
            time.sleep(0.5)             # let the vCPUs finish their work
            cpu = (cpu_seconds(vm) - c0 - 0.5 * idle_cpu(vm)) / len(toggle)
            noop = [pci_out(vm, "h", 0xcfc, 0) for _ in range(50)]
            res[n] = {"toggle_ms": statistics.median(toggle) * 1e3,
                      "toggle_cpu_ms": cpu * 1e3,
                      "noop_ms": statistics.median(noop) * 1e3}
    return res


def unplug(info, m, build, maxcpus):
    with VM(m, smp="1,maxcpus=%d" % maxcpus, paused=True, mem="2G",
            qemu_build=build) as vm:
        info["accel"] = vm.accel
        order = [s["props"] for s in reversed(slots(vm))]   # by index
        add_all(vm, order[1:], 1)
        lpc = [ln.split()[0] for ln in vm.hmp.cmd("info qom-tree").split("\n")
               if ln.strip().endswith("(ICH9-LPC)")]
        if len(lpc) != 1:
            raise RuntimeError("ICH9-LPC not found in info qom-tree")
        path = "/machine/unattached/" + lpc[0].lstrip("/")
        vm.qmp.cmd("qom-set", path=path, property="cpu-hotplug-legacy",
                   value=False)
        t = []
        for i in range(len(order) - 1, 0, -1):
            since = vm.qmp.mark()
            vm.qmp.cmd("device_del", id="sc%d" % i)
            pci_out(vm, "w", CPUHP, i)                  # CPU selector
            t0 = time.monotonic()
            pci_out(vm, "b", CPUHP + 4, 8)              # eject
            for cmd, val in ((1, 3), (2, 0)):           # _OST 3 (eject), 0
                pci_out(vm, "b", CPUHP + 5, cmd)
                pci_out(vm, "w", CPUHP + 8, val)
            te, _ = vm.qmp.wait_event("DEVICE_DELETED", 30, since,
                                      device="sc%d" % i)
            t.append(te - t0)
    return eighths(t)


def burst(info, m, build, n):
    with VM(m, smp="1,maxcpus=%d" % n, mem="1G", qemu_build=build) as vm:
        info["accel"] = vm.accel
        vm.wait_ready(timeout=600)
        free = free_slots(vm)
        since = vm.mark()
        t0 = time.monotonic()
        for i, props in enumerate(free):
            vm.qmp.cmd("device_add", driver=cpu_driver(m), id="b%d" % i,
                       **props)
        t_qmp = time.monotonic() - t0
        last = t0
        for c in range(1, n):
            t, _ = vm.wait_line(r"^@@EV \S+ online cpu%d$" % c,
                                max(1, t0 + 600 - time.monotonic()), since)
            last = max(last, t)
        online = vm.cpus(timeout=120)["online"]
        if len(online) != n:
            raise RuntimeError("guest has %d CPUs online" % len(online))
    return {"cpus": len(free), "last_qmp_return_s": t_qmp,
            "all_online_s": last - t0}


def boot(info, m, build, n):
    with VM(m, smp=str(n), mem="1G", qemu_build=build) as vm:
        info["accel"] = vm.accel
        return {"cpus": n, "boot_s": vm.wait_ready(timeout=900)}


def measure(fn, *args):
    """(figures or "n/a: <error>", accelerator)"""
    info = {}
    try:
        res = fn(info, *args)
    except QMPError as e:
        res = "n/a: %s" % e.desc
    except Exception as e:
        res = "n/a: %s: %s" % (type(e).__name__, e)
    return res, info.get("accel", "-")


# section -> rows of (label, key path in a build's figures, format)
ROWS = {
    "plug": [("free slots plugged", ("cpus",), "%d"),
             ("device_add first 1/8 mean ms", ("first_eighth_ms",), "%.2f"),
             ("device_add last 1/8 mean ms", ("last_eighth_ms",), "%.2f"),
             ("device_add median ms", ("median_ms",), "%.2f"),
             ("last/first", ("last_first",), "%.2f"),
             ("total s", ("total_s",), "%.2f")],
    "rss": [("RSS before KiB", ("rss_kib_before",), "%d"),
            ("RSS after KiB", ("rss_kib_after",), "%d"),
            ("RSS KiB per vCPU", ("rss_kib_per_cpu",), "%.0f")],
    "unplug": [("CPUs unplugged", ("cpus",), "%d"),
               ("eject -> DEVICE_DELETED first 1/8 ms",
                ("first_eighth_ms",), "%.2f"),
               ("eject -> DEVICE_DELETED last 1/8 ms",
                ("last_eighth_ms",), "%.2f"),
               ("eject -> DEVICE_DELETED median ms", ("median_ms",), "%.2f"),
               ("last/first", ("last_first",), "%.2f")],
    "burst": [("last QMP return s", ("last_qmp_return_s",), "%.2f"),
              ("all online in the guest s", ("all_online_s",), "%.2f")],
    "boot": [("guest ready s", ("boot_s",), "%.1f")],
}


def pci_rows(counts):
    return [("%s ms, %d vCPUs" % (w, n), (n, k), "%.3f") for n in counts
            for w, k in (("toggle median", "toggle_ms"),
                         ("toggle QEMU CPU time", "toggle_cpu_ms"),
                         ("no-op write median", "noop_ms"))]


def figure(x, path):
    for k in path:
        x = x[k]
    return x


def print_section(title, r, rows, builds):
    print("  -- %s (accel: %s)" % (title, ", ".join(
        "%s %s" % (b, r["accel"][b]) for b in builds)))
    print("     %-32s %12s %12s %11s" % ("", "stock", "ours", "ours/stock"))
    for label, path, fmt in rows:
        v = {b: r[b] if isinstance(r[b], str) else figure(r[b], path)
             for b in builds}
        cell = {b: "n/a" if isinstance(v[b], str) else fmt % v[b]
                for b in builds}
        ratio = ""
        if len(builds) == 2 and not any(isinstance(x, str)
                                        for x in v.values()) and v["stock"]:
            ratio = "%.2f" % (v["ours"] / v["stock"])
        print("     %-32s %12s %12s %11s" % (label, cell.get("stock", ""),
                                               cell.get("ours", ""), ratio))
    for b in builds:
        if isinstance(r[b], str):
            print("     %s: %s" % (b, r[b]))
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--machines", default="q35,microvm,virt")
    ap.add_argument("--builds", default="stock,ours")
    ap.add_argument("--skip", default="", help="comma list of " +
                    ",".join(PARTS))
    ap.add_argument("--max", type=int, default=255, help="maxcpus")
    ap.add_argument("--json", default=os.path.join(ROOT, "build/scale.json"))
    ap.add_argument("--kvm", default="", help="machines whose plug and rss "
                    "are also measured under nested KVM (ours only)")
    a = ap.parse_args()
    builds = a.builds.split(",")
    skip = set(a.skip.split(",")) - {""}
    counts = [n for n in (1, 64, a.max - 1) if n < a.max]
    res = {}
    for m in a.machines.split(","):
        res[m] = {}
        print("== %s" % m, flush=True)
        todo = [("plug", plug, (a.max,)), ("pci", pci, (counts,)),
                ("unplug", unplug, (a.max,)),
                ("burst", burst, (min(64, a.max),)), ("boot", boot, (a.max,))]
        for part, fn, args in todo:
            if part == "plug" and {"plug", "rss"} <= skip or \
                    part != "plug" and part in skip or \
                    part in ("pci", "unplug") and m != "q35":
                continue
            r = res[m][part] = {"accel": {}}
            for b in builds:
                t0 = time.monotonic()
                r[b], r["accel"][b] = measure(fn, m, BUILDS[b], *args)
                print("  %s %s: %.0fs wall, %s" % (
                    part, b, time.monotonic() - t0,
                    r[b] if isinstance(r[b], str) else "done"), flush=True)
        for part, title in (("plug", "prelaunch device_add, -smp 1,maxcpus=%d"
                             % a.max),
                            ("rss", "RSS per plugged vCPU (prelaunch)"),
                            ("pci", "PCI BAR decoding toggle, HMP port I/O"),
                            ("unplug", "device_del completion, -S, guest "
                             "part by HMP port I/O"),
                            ("burst", "%d device_add back to back, running "
                             "guest" % (min(64, a.max) - 1)),
                            ("boot", "boot -smp %d" % a.max)):
            src = "plug" if part == "rss" else part
            if src in res[m] and part not in skip:
                print_section(title, res[m][src], pci_rows(counts)
                              if part == "pci" else ROWS[part], builds)
        if m in a.kvm.split(","):
            r = res[m]["plug_kvm"] = {"accel": {}}
            t0 = time.monotonic()
            r["ours"], r["accel"]["ours"] = measure(plug, m, "kvm", a.max)
            print("  plug under nested KVM: %.0fs wall" % (
                time.monotonic() - t0), flush=True)
            print_section("prelaunch device_add under nested KVM, -smp "
                          "1,maxcpus=%d" % a.max, r,
                          ROWS["plug"] + ROWS["rss"], ["ours"])
    os.makedirs(os.path.dirname(a.json), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump(res, f, indent=1)
    print("wrote %s" % a.json)


if __name__ == "__main__":
    main()
