"""q35 with OVMF's SMM build, what libvirt gives secure-boot guests:
OVMF_CODE_4M.secboot.fd, smm=on, secure pflash.  The firmware negotiates
SMI-based CPU hotplug.  Under TCG the SMBASE relocation handshake for a
new CPU does not complete and the guest froze; QEMU now refuses the
device_add with the reason, and the guest keeps running.  Under KVM
(test_kvm's kvm/q35/ovmf-smm, an L2 of nested.py) the CPU plugs and
unplugs through the firmware, and a guest that refuses the eject gets
DEVICE_UNPLUG_GUEST_ERROR and keeps the CPU."""
import os
import shutil
import tempfile

from hotplug import (free_slot, expect_error, assert_unharmed, plug,
                     timed_cycles)
from test_unplug import refused_body, REFUSED_TIMEOUT
from vm import VM, cpu_driver

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
    return scenario


def scenarios():
    return [("q35/ovmf-smm", smm())]
