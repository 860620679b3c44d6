"""q35 with OVMF's SMM build, what libvirt gives secure-boot guests:
OVMF_CODE_4M.secboot.fd, smm=on, secure pflash.  The firmware negotiates
SMI-based CPU hotplug.  Under TCG the SMBASE relocation handshake for a
new CPU does not complete and the guest froze; QEMU now refuses the
device_add with the reason, and the guest keeps running."""
import os
import shutil
import tempfile

from hotplug import free_slot, expect_error, assert_unharmed, plug, unplug
from vm import VM, cpu_driver

OVMF = "/usr/share/OVMF"
CODE, VARS = OVMF + "/OVMF_CODE_4M.secboot.fd", OVMF + "/OVMF_VARS_4M.fd"


def smm(m="q35"):
    def scenario(r):
        with tempfile.TemporaryDirectory() as tmp:
            vars_fd = os.path.join(tmp, "vars.fd")
            shutil.copy(VARS, vars_fd)
            extra = ["-drive", "if=pflash,format=raw,unit=0,readonly=on,"
                     "file=" + CODE,
                     "-drive", "if=pflash,format=raw,unit=1,file=" + vars_fd,
                     "-global", "driver=cfi.pflash01,property=secure,"
                     "value=on", "-global", "ICH9-LPC.disable_s3=1"]
            with VM(m, machine_opts="smm=on", extra=extra, mem="1G",
                    timeout=300) as vm:
                vm.wait_ready()
                print("%s/ovmf-smm: accel=%s boot=%.1fs" % (
                    m, vm.accel, vm.boot_time))
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
                        cpu = plug(vm, "c1", props)["cpu"]
                        unplug(vm, "c1", cpu, props)
    return scenario


def scenarios():
    return [("q35/ovmf-smm", smm())]
