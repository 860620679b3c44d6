"""Scenarios under real KVM: the L2 guests of a nested L1 (nested.py).
x86: the same scenarios as under TCG (test_x86, test_unplug), on pc, q35
and microvm,acpi=on, with -cpu host (host-x86_64-cpu devices) for the
basic matrix and qemu64 for cycles and a refused unplug.  arm64: the virt
guest of test_virt (UEFI, ACPI, GICv3) with -cpu host boots under KVM in
an arm64 L1.  Every L2 prints its query-kvm and fails unless KVM is
enabled and present; if KVM cannot come up in an L1, every scenario of
its arch fails with the reason."""
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


def virt_boot():
    """kvm/virt: UEFI + ACPI + in-kernel GICv3 under KVM/arm64 in the arm64
    L1, -smp 1 (no hot-plug slots: virt refuses CPU hotplug under KVM
    still).  The guest reaches its initramfs with its one CPU online."""
    def scenario(r):
        with NestedVM("kvm/virt", smp="1", cpu="host") as vm:
            with r.case("kvm/virt/boot", vm):
                vm.wait_ready()
                print("kvm/virt: L2 start to initramfs %.1fs" % vm.boot_time,
                      flush=True)
                view = vm.cpus()
                assert view["online"] == {0}, view
                assert view["possible"] == {0}, view
                assert len(vm.qmp.cmd("query-cpus-fast")) == 1
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
    arm = [("kvm/virt/boot", virt_boot())]
    # Each L1 serves its own group: the arm64 one runs beside the x86 one.
    return ([(name, grouped(name, fn)) for name, fn in out] +
            [(name, grouped(name, fn, "kvm-arm64")) for name, fn in arm])


def grouped(name, fn, group="kvm"):
    """One L1 serves one L2 at a time: the harness runs its group in
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
    scenario.group = group
    return scenario
