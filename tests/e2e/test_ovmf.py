"""q35 with OVMF's SMM build, what libvirt gives secure-boot guests:
OVMF_CODE_4M.secboot.fd, smm=on, secure pflash.  The firmware negotiates
SMI-based CPU hotplug.  Under TCG the SMBASE relocation handshake for a
new CPU does not complete and the guest froze; QEMU now refuses the
device_add with the reason, and the guest keeps running.  Under KVM
(test_kvm's kvm/q35/ovmf-smm, an L2 of nested.py) the CPU plugs and
unplugs through the firmware, a guest that refuses the eject gets
DEVICE_UNPLUG_GUEST_ERROR and keeps the CPU, and with the unplug timeout
opted in, an eject the firmware performs after the timeout is honoured
(it has parked the CPU for good: keeping it froze the guest)."""
import os
import shutil
import tempfile
import time

from hotplug import (free_slot, expect_error, assert_unharmed, plug,
                     unplug, timed_cycles)
from test_unplug import refused_body, pending, REFUSED_TIMEOUT
from vm import VM, cpu_driver


def late_eject_body(m):
    """cpu-unplug-timeout=REFUSED_TIMEOUT: the guest does not answer the
    request, QEMU reports DEVICE_UNPLUG_GUEST_ERROR; then the guest
    ejects the CPU after all, through the firmware's SMM unplug: the CPU
    goes (DEVICE_DELETED), the guest runs on, and the slot takes a new
    CPU."""
    def body(r, vm, props, cpu):
        with r.case("%s/late-eject-timeout-error" % m, vm):
            assert vm.guest("deaf 1") == ["@@DEAF 1"]
            q = vm.qmp.mark()
            vm.qmp.cmd("device_del", id="cpu1")
            assert pending(vm, props) is True
            vm.qmp.wait_event("DEVICE_UNPLUG_GUEST_ERROR",
                              REFUSED_TIMEOUT + 10, q, device="cpu1")
            assert pending(vm, props) is False
        with r.case("%s/late-eject-by-firmware-honoured" % m, vm):
            assert vm.guest("deaf 0") == ["@@DEAF 0"]
            since, q = vm.mark(), vm.qmp.mark()
            t0 = time.monotonic()
            assert vm.guest("eject %d" % cpu) == ["@@EJECT %d" % cpu]
            vm.wait_line(r"^@@EV \S+ remove cpu%d$" % cpu, 60, since)
            vm.qmp.wait_event("DEVICE_DELETED", 30, q, device="cpu1")
            print("%s: late eject -> DEVICE_DELETED %.2fs" % (
                m, time.monotonic() - t0))
            assert_unharmed(vm, 1)
        with r.case("%s/late-eject-slot-reusable" % m, vm):
            n = plug(vm, "cpu1b", props)["cpu"]
            w = vm.guest("work %d" % n)
            assert "@@WORK %d ran-on=%d" % (n, n) in w, w
            unplug(vm, "cpu1b", n, props)
    return body

OVMF = "/usr/share/OVMF"
CODE, VARS = OVMF + "/OVMF_CODE_4M.secboot.fd", OVMF + "/OVMF_VARS_4M.fd"
BOOT_TIMEOUT = 300   # OVMF in a nested L2 is slower than in TCG
CYCLES = 4           # plug/unplug rounds of one slot under KVM


def smm(m="q35", make_vm=VM, vars_fd=None):
    """make_vm's QEMU reads CODE at the same path (the L1 kit has it
    there) and a writable copy of VARS at vars_fd, by default a fresh one
    made here."""
    def scenario(r):
        with tempfile.TemporaryDirectory() as tmp:
            fd = vars_fd
            if fd is None:
                fd = os.path.join(tmp, "vars.fd")
                shutil.copy(VARS, fd)
            extra = ["-drive", "if=pflash,format=raw,unit=0,readonly=on,"
                     "file=" + CODE,
                     "-drive", "if=pflash,format=raw,unit=1,file=" + fd,
                     "-global", "driver=cfi.pflash01,property=secure,"
                     "value=on", "-global", "ICH9-LPC.disable_s3=1"]
            # the unplug timeout only for refused_body, under KVM
            opts = "smm=on,cpu-unplug-timeout=%d" % REFUSED_TIMEOUT
            with make_vm(m, machine_opts=opts, extra=extra, mem="1G",
                         timeout=BOOT_TIMEOUT) as vm:
                vm.wait_ready(BOOT_TIMEOUT)
                print("%s/ovmf-smm: accel=%s boot=%.1fs" % (
                    m, vm.accel, vm.boot_time))
                with r.case("%s/ovmf-smm-negotiated" % m, vm):
                    # QEMU's DSDT has SMI0.SMIC, an SMI on CPU hotplug
                    # events, only if the firmware negotiated it
                    out = vm.guest("grep -c SMIC "
                                   "/sys/firmware/acpi/tables/DSDT")
                    assert out != ["0"], "no SMI CPU hotplug: %s" % out
                props = free_slot(vm)
                if vm.accel.startswith("tcg"):
                    with r.case("%s/ovmf-smm-tcg-plug-refused" % m, vm):
                        expect_error(
                            vm, "CPU hotplug with firmware that handles it "
                            "in SMM (smm=on with OVMF) is not supported with "
                            "TCG", "device_add", driver=cpu_driver(m),
                            id="c1", **props)
                        assert_unharmed(vm, 1)
                else:
                    with r.case("%s/ovmf-smm-plug-unplug" % m, vm):
                        timed_cycles(vm, m + "/ovmf-smm", props, CYCLES)
                    refused_body(m + "/ovmf-smm")(
                        r, vm, props, plug(vm, "cpu1", props)["cpu"])
                    late_eject_body(m + "/ovmf-smm")(
                        r, vm, props, plug(vm, "cpu1", props)["cpu"])
    return scenario


def scenarios():
    return [("q35/ovmf-smm", smm())]
