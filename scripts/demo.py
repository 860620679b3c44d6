#!/usr/bin/env python3
"""The main job: boot a small x86 guest, hot-plug three CPUs and unplug two
through QMP with ids, printing each command and what the guest reports.
Exits 0 only if the guest saw every change.

usage: demo.py [--machine q35|pc|microvm|virt]"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "tests", "e2e"))
from vm import VM, cpu_driver       # noqa: E402
from qmp import QMPError            # noqa: E402


def show(vm, what):
    v = vm.cpus()
    fmt = lambda s: ",".join(map(str, sorted(s))) or "-"
    print("   guest: online=%s present=%s possible=%s%s   [%s]" % (
        fmt(v["online"]), fmt(v["present"]), fmt(v["possible"]),
        "" if not v["enabled"] else " enabled=" + fmt(v["enabled"]), what))
    return v


def qmp(vm, name, **args):
    print("-> %s" % json.dumps({"execute": name, "arguments": args}))
    try:
        ret = vm.qmp.cmd(name, **args)
    except QMPError as e:
        print("<- error: %s" % e.desc)
        raise
    print("<- %s" % json.dumps(ret))
    return ret


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--machine", default="q35")
    m = ap.parse_args().machine
    ok = True
    t0 = time.monotonic()
    print("== booting a %s guest with -smp 1,maxcpus=4" % m)
    with VM(m, smp="1,maxcpus=4", name="demo") as vm:
        vm.wait_ready()
        print("   QEMU: %s" % " ".join(vm.args[:1] + vm.args[1:12]) + " ...")
        print("   accelerator: %s, guest ready after %.1fs, kernel %s" % (
            vm.accel, vm.boot_time, vm.text().split("kernel=")[1].split()[0]))
        show(vm, "at boot")
        free = [s for s in vm.qmp.cmd("query-hotpluggable-cpus")
                if "qom-path" not in s]
        free.reverse()                 # lowest slot first
        plugged = []
        for i, slot in enumerate(free[:3], 1):
            dev = "vcpu%d" % i
            since = vm.mark()
            t = time.monotonic()
            qmp(vm, "device_add", driver=cpu_driver(m), id=dev,
                **slot["props"])
            try:
                _, mt = vm.wait_line(r"^@@EV \S+ online cpu(\d+)$", 60, since)
                cpu = int(mt.group(1))
                print("   guest: cpu%d online after %.2fs" % (
                    cpu, time.monotonic() - t))
                plugged.append((dev, cpu))
            except Exception as e:
                print("   guest did not bring %s online: %s" % (dev, e))
                ok = False
            v = show(vm, "after device_add %s" % dev)
            ok = ok and len(v["online"]) == 1 + i
        print("   query-hotpluggable-cpus:")
        for s in vm.qmp.cmd("query-hotpluggable-cpus"):
            print("     %s %s" % (s["props"], s.get("qom-path", "(free)")))
        for dev, cpu in reversed(plugged[-2:]):
            since, qsince = vm.mark(), vm.qmp.mark()
            t = time.monotonic()
            qmp(vm, "device_del", id=dev)
            try:
                vm.wait_line(r"^@@EV \S+ remove cpu%d$" % cpu, 60, since)
                print("   guest: cpu%d ejected after %.2fs" % (
                    cpu, time.monotonic() - t))
            except Exception as e:
                print("   guest did not eject cpu%d: %s" % (cpu, e))
                ok = False
            try:
                _, ev = vm.qmp.wait_event("DEVICE_DELETED", 5, qsince,
                                          device=dev)
                print("<- event DEVICE_DELETED %s" % json.dumps(ev["data"]))
            except TimeoutError:
                print("   (no DEVICE_DELETED for %s within 5s)" % dev)
            show(vm, "after device_del %s" % dev)
        v = vm.cpus()
        ok = ok and len(v["online"]) == 2
    print("== %s in %.0fs" % ("demo OK: the guest saw every change" if ok
                              else "demo FAILED", time.monotonic() - t0))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
