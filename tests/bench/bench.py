#!/usr/bin/env python3
"""Benchmarks of CPU hot-plug with a real guest.  Prints a table and writes
JSON (default build/bench.json).  Figures, not assertions.

  latency   device_add -> guest online; device_del -> guest removal and
            -> DEVICE_DELETED (min/median/max over --rounds); also under
            real KVM, nested (tests/e2e/nested.py), for the --kvm machines
  plug-all  hot-plug every CPU for maxcpus 16 and 64 (255 with --full):
            total, per CPU, first vs last eighth
  boot      guest boot time for maxcpus 8/64/255
  rss       QEMU RSS and threads before and after --cycles plug/unplug

usage: bench.py [--machines q35,microvm,virt] [--kvm q35,microvm,virt]
                [--rounds 10] [--cycles 100] [--full] [--latency-only]
"""
import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
from vm import VM, ROOT                 # noqa: E402
from hotplug import plug, unplug, slots  # noqa: E402


def mmm(xs):
    return {"min": min(xs), "median": statistics.median(xs), "max": max(xs),
            "n": len(xs)}


def free_slots(vm):
    return [s["props"] for s in reversed(slots(vm)) if "qom-path" not in s]


def latency(m, rounds, make_vm=VM, **vm_args):
    on, rm, dl = [], [], []
    with make_vm(m, smp="1,maxcpus=2", **vm_args) as vm:
        vm.wait_ready()
        props = free_slots(vm)[0]
        for i in range(rounds):
            p = plug(vm, "lat%d" % i, props)
            on.append(p["online"])
            u = unplug(vm, "lat%d" % i, p["cpu"], props)
            rm.append(u["removed"])
            dl.append(u["deleted"])
        accel = vm.accel
    return {"accel": accel, "add_to_online_s": mmm(on),
            "del_to_guest_removed_s": mmm(rm),
            "del_to_device_deleted_s": mmm(dl)}


def plug_all(m, maxcpus):
    with VM(m, smp="1,maxcpus=%d" % maxcpus, mem="1G") as vm:
        vm.wait_ready(timeout=600)
        times = []
        t0 = time.monotonic()
        for i, props in enumerate(free_slots(vm)):
            times.append(plug(vm, "pa%d" % i, props, timeout=300)["online"])
        total = time.monotonic() - t0
    e = max(1, len(times) // 8)
    return {"cpus": len(times), "total_s": total,
            "per_cpu_s": total / len(times),
            "first_eighth_mean_s": statistics.mean(times[:e]),
            "last_eighth_mean_s": statistics.mean(times[-e:])}


def boot(m, maxcpus):
    t0 = time.monotonic()
    with VM(m, smp="1,maxcpus=%d" % maxcpus, mem="1G") as vm:
        vm.wait_ready(timeout=600)
        return {"boot_s": vm.boot_time, "wall_s": time.monotonic() - t0}


def rss(m, cycles):
    with VM(m, smp="1,maxcpus=4") as vm:
        vm.wait_ready()
        free = free_slots(vm)
        before = vm.pid_stats()
        after10 = None
        for i in range(cycles):
            props = free[i % len(free)]
            p = plug(vm, "rc%d" % i, props)
            unplug(vm, "rc%d" % i, p["cpu"], props)
            if i == 9:
                after10 = vm.pid_stats()
        after = vm.pid_stats()
    return {"cycles": cycles, "rss_kib_before": before[0],
            "rss_kib_after_10": after10[0], "rss_kib_after": after[0],
            "threads_before": before[1], "threads_after": after[1]}


def print_latency(x):
    for k in ("add_to_online_s", "del_to_guest_removed_s",
              "del_to_device_deleted_s"):
        print("  %-26s min %.3f  median %.3f  max %.3f  (n=%d, %s)" % (
            k, x[k]["min"], x[k]["median"], x[k]["max"], x[k]["n"],
            x["accel"]), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--machines", default="q35,microvm,virt")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--cycles", type=int, default=100)
    ap.add_argument("--kvm", default="q35,microvm,virt",
                    help="machines whose latency is also measured under "
                    "nested KVM ('' for none)")
    ap.add_argument("--latency-only", action="store_true")
    ap.add_argument("--full", action="store_true", help="also maxcpus 255")
    ap.add_argument("--json", default=os.path.join(ROOT, "build/bench.json"))
    a = ap.parse_args()
    res = {}
    for m in a.machines.split(","):
        r = res[m] = {}
        print("== %s" % m, flush=True)
        r["latency"] = latency(m, a.rounds)
        print_latency(r["latency"])
        if m in a.kvm.split(","):
            from nested import NestedVM
            r["latency_kvm"] = latency("kvm/" + m, a.rounds, NestedVM,
                                       cpu="host")
            print_latency(r["latency_kvm"])
        if a.latency_only:
            continue
        sizes = [16, 64] + ([255] if a.full else [])
        r["plug_all"] = {}
        for n in sizes:
            x = r["plug_all"][n] = plug_all(m, n)
            print("  plug-all maxcpus=%-4d %3d CPUs in %6.1fs  %.2fs/CPU  "
                  "first 1/8 %.2fs  last 1/8 %.2fs" % (
                      n, x["cpus"], x["total_s"], x["per_cpu_s"],
                      x["first_eighth_mean_s"], x["last_eighth_mean_s"]),
                  flush=True)
        r["boot"] = {}
        for n in (8, 64, 255):
            x = r["boot"][n] = boot(m, n)
            print("  boot maxcpus=%-4d guest ready after %.1fs" % (
                n, x["boot_s"]), flush=True)
        x = r["rss"] = rss(m, a.cycles)
        print("  rss: %d KiB before, %d after 10 cycles, %d after %d; "
              "threads %d -> %d" % (x["rss_kib_before"], x["rss_kib_after_10"],
                                    x["rss_kib_after"], x["cycles"],
                                    x["threads_before"], x["threads_after"]),
              flush=True)
    os.makedirs(os.path.dirname(a.json), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump(res, f, indent=1)
    print("wrote %s" % a.json)


if __name__ == "__main__":
    main()
