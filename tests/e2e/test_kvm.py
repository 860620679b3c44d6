"""x86 scenarios under real KVM: the L2 guests of one nested L1
(nested.py).  The same scenarios as under TCG (test_x86, test_unplug), on
pc, q35 and microvm,acpi=on, with -cpu host (host-x86_64-cpu devices) for
the basic matrix and qemu64 for cycles and a refused unplug.  Every L2
prints its query-kvm and fails unless KVM is enabled and present; if KVM
cannot come up in L1, every scenario fails with the reason."""
import time

import test_x86
import test_unplug
import test_ovmf
from hotplug import free_slot, timed_cycles
from nested import NestedVM, OVMF_VARS

MACHINES = ("pc", "q35", "microvm")


def latency(m, rounds=5):
    """device_add -> guest online and device_del -> DEVICE_DELETED under
    KVM, printed as min / median / max."""
    def scenario(r):
        with NestedVM(m, cpu="host") as vm:
            vm.wait_ready()
            with r.case("%s/latency" % m, vm):
                timed_cycles(vm, m, free_slot(vm), rounds)
    return scenario


def scenarios():
    out = []
    for base in MACHINES:
        m = "kvm/" + base        # nested.py's name for the L2 machine
        out += [(m + "/basic", test_x86.basic(m, NestedVM, "host")),
                (m + "/cycles", test_x86.cycles(m, 10, make_vm=NestedVM)),
                (m + "/refused", test_unplug.refused(m, NestedVM))]
    out.append(("kvm/q35/latency", latency("kvm/q35")))
    out.append(("kvm/q35/ovmf-smm",
                test_ovmf.smm("kvm/q35", NestedVM, OVMF_VARS)))
    return [(name, grouped(name, fn)) for name, fn in out]


def grouped(name, fn):
    """One L1 serves one L2 at a time: the harness runs the "kvm" group in
    order on one worker.  Prints each scenario's time (boot included) and,
    when a case failed, the end of the last L2's console: the harness
    shows it only for a QEMU that died."""
    def scenario(r):
        t0, n = time.monotonic(), len(r.results)
        try:
            fn(r)
        finally:
            print("%s: %.1fs" % (name, time.monotonic() - t0), flush=True)
            vm = NestedVM.last
            if vm and any(res[1] == "FAIL" for res in r.results[n:]):
                tail = vm.text().split("\n")[-40:]
                print("%s: last L2 console lines:\n  %s" % (
                    name, "\n  ".join(tail)), flush=True)
    scenario.group = "kvm"
    return scenario
