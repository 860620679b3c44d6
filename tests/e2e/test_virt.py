"""arm virt end-to-end scenarios: CPU hot-plug/unplug under TCG with a real
arm64 Linux 6.12 guest (UEFI + ACPI, GICv3).

Linux on arm64 (>= 6.11) only uses CPUs that the MADT lists at boot
(Enabled or Online Capable); a plugged CPU shows up in
/sys/devices/system/cpu/enabled, the init onlines it."""
import os
import re
import sys

if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import test_migration
import test_x86
import vm as _vm
from hotplug import (plug, free_slot, unplug, slots, slot_of, qom_paths,
                     expect_error, assert_unharmed, check_running,
                     FREED_POISON)
from vm import VM, cpu_driver


M = "virt"
DRV = cpu_driver(M)                       # max-arm-cpu
SMP = "1,maxcpus=4"                      # 1 socket, 1 cluster, 4 cores


def core(n):
    return {"socket-id": 0, "cluster-id": 0, "core-id": n, "thread-id": 0}


def guest_table(vm, sig):
    """The bytes of ACPI table sig as the guest's kernel got it."""
    hexdump = "".join(vm.guest("od -An -tx1 -v /sys/firmware/acpi/tables/"
                               + sig))
    return bytes.fromhex(hexdump.replace(" ", ""))


def madt_giccs(vm):
    """The guest's MADT: its revision and the (flags, length) of each GICC
    structure, in order."""
    b = guest_table(vm, "APIC")
    giccs, off = [], 44                  # header 36 + GIC address 4 + flags 4
    while off < len(b):
        kind, length = b[off], b[off + 1]
        if kind == 0xB:                  # GICC: flags at offset 12
            giccs.append((int.from_bytes(b[off + 12:off + 16], "little"),
                          length))
        off += length
    return b[8], giccs


GICC_ENABLED, GICC_ONLINE_CAPABLE = 1, 1 << 3


def assert_madt_contract(vm, n_boot, n_slots):
    """Linux's arm64 contract: the -smp CPUs Enabled, every other slot
    Online Capable and not Enabled, whatever is plugged now.  Online
    Capable is ACPI 6.5: a revision 6 MADT with 6.5 GICC structures (82
    bytes) and a 6.5 FADT."""
    want = [GICC_ENABLED] * n_boot + [GICC_ONLINE_CAPABLE] * (n_slots - n_boot)
    rev, giccs = madt_giccs(vm)
    got = [f & (GICC_ENABLED | GICC_ONLINE_CAPABLE) for f, _ in giccs]
    assert got == want, "MADT GICC flags %s, expected %s" % (got, want)
    lengths = sorted(set(n for _, n in giccs))
    fadt = guest_table(vm, "FACP")
    assert (rev, lengths, fadt[8], fadt[131]) == (6, [82], 6, 5), \
        "MADT revision %d, GICC lengths %s, FADT %d.%d; expected ACPI 6.5 " \
        "(6, [82], 6.5)" % (rev, lengths, fadt[8], fadt[131])


def basic(m=M, make_vm=VM, cpu=None):
    """Cold-plug, QMP and HMP plug/unplug, re-plug, bad input, reset.
    make_vm, cpu: another kind of VM (nested.NestedVM) and CPU model."""
    def scenario(r):
        drv = cpu_driver(m, cpu)
        cold = "%s,socket-id=0,cluster-id=0,core-id=3,thread-id=0,id=cold3" \
            % drv
        # -no-reboot would turn system_reset into an exit
        with make_vm(m, smp=SMP, devices=[cold], cpu=cpu,
                     extra=["-action", "reboot=reset"]) as vm:
            with r.case("%s/boot-coldplug" % m, vm):
                vm.wait_ready()
                print("%s: accel=%s boot=%.1fs" % (m, vm.accel, vm.boot_time))
                view = vm.cpus()
                assert view["possible"] == {0, 1, 2, 3}, view
                # arm64 Linux numbers CPUs in MADT order: slot 3 is cpu3
                assert view["online"] == {0, 3}, view
                assert view["enabled"] == {0, 3}, view
                s = slot_of(vm, core(3))
                assert s["qom-path"] == "/machine/peripheral/cold3", s
                assert s["type"] == drv, s
                assert s["vcpus-count"] == 1, s
                assert len(slots(vm)) == 4
                assert "/machine/peripheral/cold3" in qom_paths(vm)
                # cold3 is plugged at boot but Online Capable, not Enabled
                assert_madt_contract(vm, 1, 4)

            with r.case("%s/hotplug-qmp" % m, vm):
                res = plug(vm, "c1", core(1))
                cpu1 = res["cpu"]
                print(m + ": plug seen %.2fs online %.2fs" % (res["seen"],
                                                            res["online"]))
                cf = [c for c in vm.qmp.cmd("query-cpus-fast")
                      if c["qom-path"] == "/machine/peripheral/c1"][0]
                assert cf["props"]["core-id"] == 1, cf
                assert cpu1 in vm.cpus()["enabled"]
                w = vm.guest("work %d" % cpu1)
                assert "@@WORK %d ran-on=%d" % (cpu1, cpu1) in w, w

            with r.case("%s/unplug-qmp-device-deleted" % m, vm):
                res = unplug(vm, "c1", cpu1, core(1))
                print(m + ": unplug removed %.2fs deleted %.2fs" % (
                    res["removed"], res["deleted"]))
                assert cpu1 not in vm.cpus()["enabled"]

            with r.case("%s/replug-same-slot-same-id" % m, vm):
                cpu1 = plug(vm, "c1", core(1))["cpu"]
                w = vm.guest("work %d" % cpu1)
                assert "@@WORK %d ran-on=%d" % (cpu1, cpu1) in w, w

            with r.case("%s/bad-input" % m, vm):
                expect_error(vm, "Duplicate device ID 'c1'", "device_add",
                             driver=drv, id="c1", **core(2))
                expect_error(vm, "CPU[1] with socket-id 0, cluster-id 0, "
                             "core-id 1, thread-id 0 exists", "device_add",
                             driver=drv, id="dup", **core(1))
                expect_error(vm, "Invalid CPU core-id: 7 must be in range "
                             "0:3", "device_add", driver=drv, id="far",
                             **core(7))
                expect_error(vm, "Invalid CPU socket-id: 1 must be in range "
                             "0:0", "device_add", driver=drv, id="far",
                             **{"socket-id": 1, "core-id": 0,
                                "thread-id": 0})
                expect_error(vm, "CPU core-id is not set", "device_add",
                             driver=drv, id="nocore",
                             **{"socket-id": 0, "thread-id": 0})
                expect_error(vm, "CPU socket-id is not set", "device_add",
                             driver=drv, id="nosock",
                             **{"core-id": 2, "thread-id": 0})
                expect_error(vm, "Invalid CPU type, expected cpu type: "
                             "'%s'" % drv, "device_add",
                             driver="cortex-a57-arm-cpu", id="wrong",
                             **core(2))
                boot = [c["qom-path"] for c in vm.qmp.cmd("query-cpus-fast")
                        if c["cpu-index"] == 0][0]
                expect_error(vm, "CPU 0 is a boot CPU (-smp cpus=1) and "
                             "cannot be unplugged", "device_del", id=boot)
                expect_error(vm, "Device 'nope' not found", "device_del",
                             id="nope")
                assert_unharmed(vm, 3)

            with r.case("%s/hmp" % m, vm):
                cpu2 = plug(vm, "h2", core(2), via="hmp")["cpu"]
                info = vm.hmp.cmd("info hotpluggable-cpus")
                assert 'qom_path: "/machine/peripheral/h2"' in info, info
                assert info.count('type: "%s"' % drv) == 4, info
                unplug(vm, "h2", cpu2, core(2), via="hmp")
                assert "h2" not in vm.hmp.cmd("info hotpluggable-cpus")

            with r.case("%s/system-reset-keeps-plugged" % m, vm):
                since = vm.mark()
                vm.qmp.cmd("system_reset")
                vm.wait_line(r"^@@READY ", 120, since)
                view = vm.cpus()
                assert view["online"] == {0, 1, 3}, view
                assert view["enabled"] == {0, 1, 3}, view
                for c in (1, 3):
                    w = vm.guest("work %d" % c)
                    assert "@@WORK %d ran-on=%d" % (c, c) in w, w
                assert slot_of(vm, core(1))["qom-path"] == \
                    "/machine/peripheral/c1"
                # the tables built at reset: still Online Capable
                assert_madt_contract(vm, 1, 4)

            with r.case("%s/unplug-after-reset" % m, vm):
                unplug(vm, "c1", 1, core(1))
                cpu1 = plug(vm, "c1b", core(1))["cpu"]
                unplug(vm, "c1b", cpu1, core(1))

            with r.case("%s/unplug-coldplugged" % m, vm):
                unplug(vm, "cold3", 3, core(3))
                assert_unharmed(vm, 1)
    return scenario


def boot_cpus_stay():
    """-smp 2,maxcpus=4: both -smp CPUs are Enabled in the MADT and refuse
    device_del with the reason; the VM and the guest are unharmed."""
    def scenario(r):
        with VM(M, smp="2,maxcpus=4") as vm:
            vm.wait_ready()
            with r.case("virt/boot-cpus-refuse-unplug", vm):
                assert_madt_contract(vm, 2, 4)
                for c in vm.qmp.cmd("query-cpus-fast"):
                    expect_error(vm, "CPU %d is a boot CPU (-smp cpus=2) and "
                                 "cannot be unplugged" % c["cpu-index"],
                                 "device_del", id=c["qom-path"])
                assert_unharmed(vm, 2)
                cpu = plug(vm, "c2", core(2))["cpu"]
                unplug(vm, "c2", cpu, core(2))
    return scenario


def topology():
    """Sockets, clusters, cores and threads: the guest places each plugged
    CPU where its ids say (PPTT)."""
    def scenario(r):
        smp = "1,sockets=2,clusters=2,cores=2,threads=2,maxcpus=16"
        with VM(M, smp=smp) as vm:
            vm.wait_ready()
            with r.case("virt/topology-slots", vm):
                ss = slots(vm)
                assert len(ss) == 16, len(ss)
                keys = {tuple(sorted(s["props"])) for s in ss}
                assert keys == {("cluster-id", "core-id", "socket-id",
                                 "thread-id")}, keys
                assert vm.cpus()["possible"] == set(range(16))
            plugged, topo = {}, {}
            for sock, cl, co, th in ((1, 1, 1, 0), (1, 1, 1, 1),
                                     (0, 1, 0, 1)):
                props = {"socket-id": sock, "cluster-id": cl, "core-id": co,
                         "thread-id": th}
                name = "t%d%d%d%d" % (sock, cl, co, th)
                with r.case("virt/topology-plug-%s" % name, vm):
                    cpu = plug(vm, name, props)["cpu"]
                    plugged[name] = cpu
                    mpidr = vm.qmp.cmd("qom-get", path="/machine/peripheral/"
                                       + name, property="mp-affinity")
                    out = vm.guest(
                        "d=/sys/devices/system/cpu/cpu%d/topology; "
                        "echo @@T $(cat $d/physical_package_id) "
                        "$(cat $d/cluster_id) $(cat $d/core_id)" % cpu)
                    t = [l for l in out if l.startswith("@@T")][0].split()
                    topo[name] = tuple(int(x) for x in t[1:])
                    w = vm.guest("work %d" % cpu)
                    assert "@@WORK %d ran-on=%d" % (cpu, cpu) in w, w
                    print("virt: %s -> cpu%d mpidr=0x%x topo=%s" % (
                        name, cpu, mpidr, t[1:]))
            with r.case("virt/topology-guest-view", vm):
                # QEMU's PPTT gives no package/cluster ids, so Linux uses
                # table offsets: compare which CPUs share them.
                assert topo["t1110"] == topo["t1111"], topo
                assert topo["t0101"][0] != topo["t1110"][0], topo
                assert topo["t0101"][1] != topo["t1110"][1], topo
            with r.case("virt/topology-thread-siblings", vm):
                a, b = plugged["t1110"], plugged["t1111"]
                out = vm.guest("cat /sys/devices/system/cpu/cpu%d/topology/"
                               "thread_siblings_list" % a)
                assert out and set(map(int, out[0].replace("-", ",").split(
                    ","))) == {a, b}, out
            with r.case("virt/topology-unplug", vm):
                for name, cpu in plugged.items():
                    sock, cl, co, th = (int(x) for x in name[1:])
                    unplug(vm, name, cpu, {"socket-id": sock,
                                           "cluster-id": cl, "core-id": co,
                                           "thread-id": th})
                assert_unharmed(vm, 1)
    return scenario


def refused(name, machine_opts, expected, smp=SMP, boot=True, extra=(),
            ncpus=1):
    """Configurations where CPU hotplug cannot work: a clear error on
    device_add, the VM keeps running."""
    def scenario(r):
        with VM(M, smp=smp, machine_opts=machine_opts, extra=extra,
                paused=not boot) as vm:
            if boot:
                vm.wait_ready()
            with r.case("virt/refused-%s" % name, vm):
                e = vm.qmp.error_of("device_add", driver=DRV, id="x",
                                    **core(1))
                assert e.desc == expected, (e.desc, expected)
                assert len(vm.qmp.cmd("query-cpus-fast")) == ncpus
                if boot:
                    check_running(vm)
                    assert vm.alive()
    return scenario


def migrate(m=M, make_vm=VM, cpu=None):
    """A VM with a hot-plugged CPU, and one plugged and unplugged again,
    migrates to a destination started with the plugged one on its command
    line (-device ...,id=c1), which can unplug it and plug both slots.
    make_vm, cpu: as for basic(); the migration file is the QEMUs' (for
    nested L2s, in their L1)."""
    def scenario(r):
        drv = cpu_driver(m, cpu)
        f = "/tmp/virt-mig-%d.bin" % os.getpid()
        cold = "%s,socket-id=0,cluster-id=0,core-id=1,thread-id=0,id=c1" % drv
        try:
            with make_vm(m, smp=SMP, cpu=cpu) as src:
                src.wait_ready()
                with r.case("%s/migrate-source-plug" % m, src):
                    num = plug(src, "c1", core(1))["cpu"]
                    gone = plug(src, "c3", core(3))["cpu"]
                    unplug(src, "c3", gone, core(3))
                    test_migration.save_to_file(src, f)
            with make_vm(m, smp=SMP, devices=[cold], cpu=cpu,
                         extra=["-incoming", "defer"]) as dst:
                with r.case("%s/migrate-destination" % m, dst):
                    test_migration.load_from_file(dst, f)
                    view = dst.cpus()
                    assert view["online"] == {0, num}, view
                    w = dst.guest("work %d" % num)
                    assert "@@WORK %d ran-on=%d" % (num, num) in w, w
                    unplug(dst, "c1", num, core(1))
                    for n, dev in ((2, "c2"), (3, "c3b")):
                        num = plug(dst, dev, core(n))["cpu"]
                        w = dst.guest("work %d" % num)
                        assert "@@WORK %d ran-on=%d" % (num, num) in w, w
        finally:
            if os.path.exists(f):
                os.unlink(f)
    return scenario


def single_thread_tcg():
    def scenario(r):
        # Freed memory poisoned: see test_x86.single_thread_tcg()
        with VM(M, smp="1,maxcpus=2", accel="tcg,thread=single",
                env=FREED_POISON) as vm:
            vm.wait_ready()
            props = free_slot(vm)
            with r.case("virt/tcg-single-thread-plug-unplug", vm):
                for i in range(12):
                    cpu = plug(vm, "st%d" % i, props, timeout=20)["cpu"]
                    w = vm.guest("work %d" % cpu)
                    assert "@@WORK %d ran-on=%d" % (cpu, cpu) in w, w
                    unplug(vm, "st%d" % i, cpu, props, timeout=20)
                assert_unharmed(vm, 1)
    return scenario


# PSCI calls from a bare-metal image (no firmware, no ACPI): CPU_ON and
# AFFINITY_INFO for MPIDR 1 (a possible CPU that is not plugged) and 7 (not
# a possible CPU); each result is printed as chr(0x40 + result).
def _psci_image():
    import struct

    def movz(rd, imm, hw=0):
        return 0xD2800000 | hw << 21 | imm << 5 | rd

    def movk(rd, imm, hw):
        return 0xF2800000 | hw << 21 | imm << 5 | rd

    def call(fn, mpidr, entry):
        return [movz(0, fn), movk(0, 0xC400, 1), movz(1, mpidr),
                movz(2, entry & 0xffff), movk(2, entry >> 16, 1),
                movz(3, 0), 0xD4000002,                     # hvc #0
                0x11000000 | 0x40 << 10 | 0 << 5 | 4,       # add w4, w0, #0x40
                0xB9000000 | 5 << 5 | 4]                    # str w4, [x5]
    code = [movz(5, 0x0900, 1)]                             # x5 = UART DR
    code += call(3, 1, 0x40000080) + call(3, 7, 0x40000080)  # CPU_ON
    code += call(4, 1, 0) + call(4, 7, 0)                   # AFFINITY_INFO
    code += [movz(4, 0x0a), 0xB9000000 | 5 << 5 | 4, 0x14000000]
    return b"".join(struct.pack("<I", c) for c in code)


def psci():
    """PSCI CPU_ON of a possible but absent CPU answers DENIED (-3), not
    INVALID_PARAMETERS (-2), and AFFINITY_INFO reports it OFF (1), where
    the board has CPU hotplug (the image is the firmware, so virt enables
    it); virt-10.0, which has none, answers as stock 10.0 does."""
    def run(machine):
        import subprocess
        import tempfile
        with tempfile.NamedTemporaryFile(suffix=".bin") as img:
            img.write(_psci_image())
            img.flush()
            binary = os.path.join(_vm.QEMU_BUILD, "qemu-system-aarch64")
            proc = subprocess.Popen(
                [binary, "-M", machine + ",gic-version=3", "-cpu", "max",
                 "-accel", "tcg", "-smp", "1,maxcpus=4", "-m", "256M",
                 "-nodefaults", "-display", "none", "-serial", "stdio",
                 "-bios", img.name], stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT)
            try:
                out = proc.stdout.readline().decode(errors="replace")
            finally:
                proc.kill()
                proc.wait()
            return out, [ord(c) - 0x40 for c in out.strip()]

    def scenario(r):
        # CPU_ON(1), CPU_ON(7), AFFINITY_INFO(1), AFFINITY_INFO(7)
        with r.case("virt/psci-cpu-on-absent-denied"):
            out, res = run("virt")
            assert res == [-3, -2, 1, -2], (out, res)
        with r.case("virt/psci-released-machine-as-stock"):
            out, res = run("virt-10.0")
            assert res == [-2, -2, -2, -2], (out, res)
    return scenario


def no_hotplug_handler():
    """A machine without a CPU hotplug handler refuses -device of a CPU
    (it could not wire it up) for every arch, with the reason."""
    def scenario(r):
        import subprocess
        with r.case("virt/cpu-needs-machine-hotplug-handler"):
            for arch, drv in (("aarch64", DRV),
                              ("x86_64", "qemu64-x86_64-cpu")):
                binary = os.path.join(_vm.QEMU_BUILD, "qemu-system-" + arch)
                p = subprocess.run(
                    [binary, "-M", "none", "-display", "none", "-S",
                     "-device", drv + ",id=c1"],
                    capture_output=True, text=True, timeout=60)
                assert p.returncode == 1, (arch, p.returncode, p.stderr)
                assert "Machine type 'none' does not support adding CPUs" \
                    in p.stderr, (arch, p.stderr)
    return scenario


def scenarios():
    return [
        ("virt/basic", basic()),
        ("virt/topology", topology()),
        ("virt/boot-cpus-stay", boot_cpus_stay()),
        ("virt/cycles", test_x86.cycles(
            M, int(os.environ.get("VIRT_CYCLES", 200)), smp=SMP)),
        ("virt/paused", test_x86.paused(M, SMP, core(1), core(2))),
        ("virt/migrate", migrate()),
        ("virt/single-thread", single_thread_tcg()),
        ("virt/psci", psci()),
        ("virt/no-hotplug-handler", no_hotplug_handler()),
        ("virt/refused-gicv2", refused(
            "gicv2", "gic-version=2",
            "CPU hotplug on the virt machine requires gic-version=3 or "
            "later")),
        ("virt/refused-no-acpi", refused(
            "no-acpi", "acpi=off",
            "CPU hotplug on the virt machine requires ACPI (an AArch64 CPU, "
            "UEFI firmware and acpi=on)")),
        ("virt/refused-old-machine", refused(
            "virt-9.2", "", "CPU hotplug on the virt machine is not "
            "supported by this machine type", boot=False,
            extra=["-M", "virt-9.2"])),
        ("virt/refused-released-machine", refused(
            "virt-10.0", "", "CPU hotplug on the virt machine is not "
            "supported by this machine type", boot=False,
            extra=["-M", "virt-10.0"])),
        ("virt/maxcpus-equals-cpus", refused(
            "all-slots-taken", "", "CPU[1] with socket-id 0, cluster-id 0, "
            "core-id 1, thread-id 0 exists", smp="2", ncpus=2)),
    ]


if __name__ == "__main__":
    import harness
    c = harness.run(scenarios(), jobs=int(os.environ.get("JOBS", 1)),
                    pattern=sys.argv[1] if len(sys.argv) > 1 else None)
    print("virt e2e: %d passed, %d failed, %d skipped" % (
        c["PASS"], c["FAIL"] + c["XPASS"], c["SKIP"]))
    sys.exit(1 if c["FAIL"] + c["XPASS"] else 0)
