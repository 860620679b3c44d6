"""Scenarios under real KVM: the L2 guests of a nested L1 (nested.py).
x86: the same scenarios as under TCG (test_x86, test_unplug), on pc, q35
and microvm,acpi=on, with -cpu host (host-x86_64-cpu devices) for the
basic matrix and qemu64 for cycles and a refused unplug; migration with a
plugged and an unplugged CPU (through a file in L1), and on q35 an
ignored unplug with cpu-unplug-timeout and a late eject.  arm64: the virt
scenarios of test_virt (UEFI, ACPI, in-kernel GICv3) with -cpu host
(host-arm-cpu devices) in an arm64 L1: plug, unplug, re-plug, HMP, bad
input, system_reset, cold-plug, 50 cycles, migration, a refused unplug,
and max-arm-cpu.  Every L2 prints its query-kvm and fails unless KVM is
enabled and present; if KVM cannot come up in an L1, every scenario of
its arch fails with the reason."""
import time

import test_x86
import test_unplug
import test_ovmf
import test_virt
import test_migration
from vm import cpu_driver
from hotplug import (free_slot, timed_cycles, plug, unplug, expect_error,
                     assert_unharmed)
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


def x86_migrate(m):
    """A guest with two hot-plugged CPUs, one unplugged again, migrates to
    a destination started with -device for the plugged one (ids and props
    from query-hotpluggable-cpus).  Through a file in L1, which runs one L2
    at a time.  The guest keeps its online CPUs, QMP the same slots, and
    unplug (of the migrated CPU) and plug (of the slot freed on the
    source) go on working."""
    def scenario(r):
        f = "/tmp/kvm-migrate.bin"          # in L1
        with NestedVM(m, cpu="host") as src:
            src.wait_ready()
            with r.case(m + "/migrate-source", src):
                free = test_migration.free(src)
                a = plug(src, "c1", free[0])["cpu"]
                b = plug(src, "c2", free[1])["cpu"]
                unplug(src, "c2", b, free[1])
                want, online = test_migration.taken(src), src.cpus()["online"]
                test_migration.save_to_file(src, f)
        dev = test_migration.device_arg("c1", cpu_driver(m, "host"), free[0])
        with NestedVM(m, cpu="host", devices=[dev],
                      extra=["-incoming", "defer"]) as dst:
            with r.case(m + "/migrate-destination", dst):
                test_migration.load_from_file(dst, f)
                assert dst.cpus()["online"] == online, dst.cpus()
                assert test_migration.taken(dst) == want
                w = dst.guest("work %d" % a)
                assert "@@WORK %d ran-on=%d" % (a, a) in w, w
                unplug(dst, "c1", a, free[0])
                n = plug(dst, "c3", free[1])["cpu"]
                w = dst.guest("work %d" % n)
                assert "@@WORK %d ran-on=%d" % (n, n) in w, w
    return scenario


def virt_boot():
    """kvm/virt: UEFI + ACPI + in-kernel GICv3 under KVM/arm64 in the arm64
    L1, -smp 1,maxcpus=4.  Linux calls PSCI CPU_ON for each Online Capable
    slot at boot and must get DENIED: KVM's own PSCI would start the
    parked vCPU of the slot, which nobody runs, and the guest would wait
    5 s for each ("CPU1: failed to come online")."""
    def scenario(r):
        with NestedVM("kvm/virt", smp=test_virt.SMP, cpu="host") as vm:
            with r.case("kvm/virt/boot-slots-denied", vm):
                vm.wait_ready()
                print("kvm/virt: L2 start to initramfs %.1fs" % vm.boot_time,
                      flush=True)
                view = vm.cpus()
                assert view["online"] == {0}, view
                assert view["possible"] == {0, 1, 2, 3}, view
                assert len(vm.qmp.cmd("query-cpus-fast")) == 1
                bad = [l for l in vm.text().split("\n")
                       if "failed to come online" in l or
                       "failed in unknown state" in l]
                assert not bad, bad
    return scenario


def virt_kvm_only():
    """Under KVM a plugged CPU must have the boot CPUs' vCPU features: a
    clear error naming the property, the VM unharmed; and -cpu max
    (max-arm-cpu, host's features under KVM) plugs and unplugs."""
    def scenario(r):
        with NestedVM("kvm/virt", smp=test_virt.SMP, cpu="host") as vm:
            vm.wait_ready()
            with r.case("kvm/virt/bad-input-vcpu-features", vm):
                boot = vm.qmp.cmd("query-cpus-fast")[0]["qom-path"]
                pmu = vm.qmp.cmd("qom-get", path=boot, property="pmu")
                want, got = ("on", "off") if pmu else ("off", "on")
                expect_error(vm, "Invalid CPU property 'pmu': %s, under KVM "
                             "it must be the boot CPUs' value (%s)" %
                             (got, want), "device_add",
                             driver="host-arm-cpu", id="p1", pmu=not pmu,
                             **test_virt.core(1))
                assert_unharmed(vm, 1)
                cpu = plug(vm, "p1", test_virt.core(1))["cpu"]
                unplug(vm, "p1", cpu, test_virt.core(1))
        with NestedVM("kvm/virt", smp=test_virt.SMP, cpu="max") as vm:
            vm.wait_ready()
            with r.case("kvm/virt/max-arm-cpu", vm):
                cpu = plug(vm, "m2", test_virt.core(2))["cpu"]
                w = vm.guest("work %d" % cpu)
                assert "@@WORK %d ran-on=%d" % (cpu, cpu) in w, w
                unplug(vm, "m2", cpu, test_virt.core(2))
    return scenario


def scenarios():
    out = []
    for base in MACHINES:
        m = "kvm/" + base        # nested.py's name for the L2 machine
        out += [(m + "/basic", test_x86.basic(m, NestedVM, "host")),
                (m + "/cycles", test_x86.cycles(m, 10, make_vm=NestedVM)),
                (m + "/refused", test_unplug.refused(m, NestedVM)),
                (m + "/migrate", x86_migrate(m))]
    out.append(("kvm/q35/ignored", test_unplug.ignored("kvm/q35", NestedVM)))
    out.append(("kvm/q35/latency", latency("kvm/q35")))
    out.append(("kvm/q35/ovmf-smm",
                test_ovmf.smm("kvm/q35", NestedVM, OVMF_VARS)))
    v = "kvm/virt"
    arm = [(v + "/boot", virt_boot()),
           (v + "/basic", test_virt.basic(v, NestedVM, "host")),
           (v + "/kvm-only", virt_kvm_only()),
           (v + "/cycles", test_x86.cycles(v, 50, smp=test_virt.SMP,
                                           make_vm=NestedVM)),
           (v + "/migrate", test_virt.migrate(v, NestedVM, "host")),
           (v + "/refused", test_unplug.refused(v, NestedVM))]
    # Each L1 serves its own group: the arm64 one runs beside the x86 one.
    return ([(name, grouped(name, fn)) for name, fn in out] +
            [(name, grouped(name, fn, "kvm-arm64")) for name, fn in arm])


def grouped(name, fn, group="kvm"):
    """One L1 serves one L2 at a time: the harness runs its group in
    order on one worker.  Prints each scenario's time (boot included) and,
    when a case failed, the end of the console of the group's last L2 (not
    of the other group's, which runs at the same time): the harness shows
    it only for a QEMU that died."""
    def scenario(r):
        t0, n = time.monotonic(), len(r.results)
        try:
            fn(r)
        finally:
            print("%s: %.1fs" % (name, time.monotonic() - t0), flush=True)
            vm = NestedVM.last.get(
                "aarch64" if group == "kvm-arm64" else "x86_64")
            if vm and any(res[1] == "FAIL" for res in r.results[n:]):
                tail = vm.text().split("\n")[-40:]
                print("%s: last L2 console lines:\n  %s" % (
                    name, "\n  ".join(tail)), flush=True)
                # and L1's: L2 QEMU's own messages, KVM's in L1's dmesg
                tail = vm.l1.vm.text().split("\n")[-15:]
                print("%s: last L1 console lines:\n  %s" % (
                    name, "\n  ".join(tail)), flush=True)
    scenario.group = group
    return scenario
