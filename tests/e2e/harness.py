"""A small test runner for end-to-end scenarios.

A scenario boots one guest and runs several named cases against it in
order (booting is the expensive part).  Each case ends as PASS, FAIL,
SKIP (with the reason) or KNOWN: a failure listed in KNOWN_FAILURES with
the defect it shows.  A listed case that passes is an XPASS and counts as
a failure, so a fixed defect cannot keep hiding behind its mark.
"""
import fnmatch
import json
import os
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor

# case-name pattern -> the defect that makes it fail on this tree.
# Empty: the series fixes every defect the scenarios know about.
KNOWN_FAILURES = {}

# The same scenarios run against the unpatched Debian base (E2E_BASE=1,
# QEMU_BUILD=<a build of the base>) fail where the base has these defects.
BASE_DEFECTS = {
    "*/unplug-qmp-device-deleted": "no DEVICE_DELETED for the CPU under "
    "TCG: the CPU references itself through its own memory regions",
    "*/hmp": "no DEVICE_DELETED for the CPU under TCG",
    "*/unplug-coldplugged": "no DEVICE_DELETED for the CPU under TCG",
    "*/cycles-*": "TCG contexts are never given back: abort "
    "'n < tcg_max_ctxs' after maxcpus vCPU creations",
    "*/tcg-single-thread-*": "cpu_remove_sync joins the shared round-robin "
    "thread: 'qemu_thread_join: Resource deadlock avoided'",
    "*/apic-id-needs-x2apic-error": "exit 134 in apic_common_set_id() "
    "instead of a device_add error",
    "*/linux-6.12-*": "no acpi-online-capable: Linux 6.12 sees 0 hotplug "
    "CPUs under TCG",
    "*/topology-*": "guest CPUID 0x1F subleaf past the last level aborts "
    "QEMU (encode_topo_cpuid1f assertion)",
    "microvm/*": "no CPU hotplug on microvm",
    "libvirt/*-setvcpus-down": "no DEVICE_DELETED under TCG: libvirt "
    "fails after 5 s, 'vcpu unplug request timed out'",
    "libvirt/virt-setvcpus-up": "virt-10.0 reports hotpluggable-cpus "
    "false: libvirt refuses",
}
if os.environ.get("E2E_BASE") == "1":
    KNOWN_FAILURES = BASE_DEFECTS


class Skip(Exception):
    pass


class Reporter:
    def __init__(self, out=sys.stdout):
        self.lock = threading.Lock()
        self.results = []        # (name, status, detail, seconds)
        self.out = out

    def _known(self, name):
        for pat, defect in KNOWN_FAILURES.items():
            if fnmatch.fnmatchcase(name, pat):
                return defect
        return None

    def record(self, name, status, detail="", secs=0.0):
        with self.lock:
            self.results.append((name, status, detail, secs))
            msg = "%-5s %s (%.1fs)" % (status, name, secs)
            if detail:
                msg += "\n      " + detail.replace("\n", "\n      ")
            print(msg, file=self.out, flush=True)

    def case(self, name, vm=None):
        """Context manager for one case; with vm, a failure also says
        whether QEMU died and what it printed last."""
        return _Case(self, name, vm)

    def counts(self):
        c = {"PASS": 0, "FAIL": 0, "SKIP": 0, "KNOWN": 0, "XPASS": 0}
        for _, st, _, _ in self.results:
            c[st] += 1
        return c


class _Case:
    def __init__(self, rep, name, vm):
        self.rep, self.name, self.vm = rep, name, vm

    def __enter__(self):
        self.t0 = time.monotonic()
        return self

    def __exit__(self, et, ev, tb):
        secs = time.monotonic() - self.t0
        known = self.rep._known(self.name)
        if et is None:
            if known:
                self.rep.record(self.name, "XPASS",
                                "listed as known failure (%s) but passes: "
                                "remove the mark" % known, secs)
            else:
                self.rep.record(self.name, "PASS", "", secs)
        elif et is Skip:
            self.rep.record(self.name, "SKIP", str(ev), secs)
        else:
            detail = "%s: %s" % (et.__name__, ev)
            if not isinstance(ev, AssertionError):
                detail += "\n" + "".join(
                    traceback.format_tb(tb)[-3:]).rstrip()
            if self.vm is not None and self.vm.proc.poll() is not None:
                tail = self.vm.text().split("\n")[-6:]
                detail += "\nQEMU exited with %s; last output:\n  %s" % (
                    self.vm.proc.poll(), "\n  ".join(tail))
            if known:
                self.rep.record(self.name, "KNOWN",
                                "defect: %s\n%s" % (known, detail), secs)
            else:
                self.rep.record(self.name, "FAIL", detail, secs)
        return et is not KeyboardInterrupt


def run(scenarios, jobs=2, pattern=None, json_out=None):
    """scenarios: list of (name, fn(reporter)).  Runs them on a pool."""
    rep = Reporter()
    todo = [(n, f) for n, f in scenarios
            if not pattern or fnmatch.fnmatchcase(n, pattern)]
    t0 = time.monotonic()

    def one(group):
        for name, fn in group:
            try:
                fn(rep)
            except Exception as e:          # the scenario itself broke
                rep.record(name + "/scenario", "FAIL", "%s: %s\n%s" % (
                    type(e).__name__, e, traceback.format_exc()[-1500:]))

    # Scenarios whose function has a "group" attribute share something
    # that serves one at a time (the nested-KVM L1): one worker runs the
    # group in order, and groups start first, beside the others.
    groups = {}
    for n, f in todo:
        groups.setdefault(getattr(f, "group", n), []).append((n, f))
    tasks = sorted(groups.values(),
                   key=lambda g: not hasattr(g[0][1], "group"))
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(one, tasks))
    c = rep.counts()
    known = [r for r in rep.results if r[1] == "KNOWN"]
    if known:
        print("\n%d known failures (defects of this tree, not counted as "
              "failed):" % len(known))
        for name, _, detail, _ in known:
            print("  %s: %s" % (name, detail.split("\n")[0]))
    print("\ne2e: %d scenarios in %.0fs" % (len(todo), time.monotonic() - t0))
    if json_out:
        with open(json_out, "w") as f:
            json.dump({"counts": c, "results": rep.results}, f, indent=1)
    return c
