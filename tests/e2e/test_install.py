"""make install PREFIX=...: the installed emulators find Debian's firmware
by themselves.  scripts/install.sh installs into a temporary prefix, then a
guest boots with each installed binary and no -L, and a CPU is hot-plugged
into it (SeaBIOS, the option ROMs and, by name, UEFI come from the
configured --firmwarepath)."""
import os
import shutil
import subprocess
import sys
import tempfile

from vm import VM, ROOT
from hotplug import plug, slots


def installed(r):
    prefix = tempfile.mkdtemp(prefix="vcpu-install-")
    try:
        with r.case("install/installs-both-emulators"):
            out = subprocess.run(
                ["sh", os.path.join(ROOT, "scripts/install.sh")],
                env=dict(os.environ, PREFIX=prefix), capture_output=True,
                text=True)
            assert out.returncode == 0, out.stdout + out.stderr
            for arch in ("x86_64", "aarch64"):
                exe = os.path.join(prefix, "bin", "qemu-system-" + arch)
                assert os.access(exe, os.X_OK), "%s missing" % exe
            # No qemu-bundle next to the binaries: paths are the installed
            # ones, not the build tree's.
            assert not os.path.exists(os.path.join(prefix, "bin",
                                                   "qemu-bundle"))
        for m in ("q35", "virt"):
            # virt: the firmware by name too, as a user would give it
            extra = ["-bios", "QEMU_EFI.fd"] if m == "virt" else []
            with VM(m, qemu_build=os.path.join(prefix, "bin"),
                    fw_dirs=(), extra=extra) as vm:
                with r.case("install/%s-boots-without-L" % m, vm):
                    vm.wait_ready()
                    props = [s["props"] for s in slots(vm)
                             if "qom-path" not in s][0]
                    p = plug(vm, "inst1", props)
                    assert p["cpu"] is not None
                    print("  %s: installed %s, accel %s, cpu%d online after "
                          "%.2fs" % (m, vm.args[0], vm.accel, p["cpu"],
                                     p["online"]), flush=True)
    finally:
        shutil.rmtree(prefix, ignore_errors=True)


def scenarios():
    return [("install", installed)]


if __name__ == "__main__":
    import harness
    c = harness.run(scenarios())
    print("install e2e: %d passed, %d failed, %d skipped" % (
        c["PASS"], c["FAIL"] + c["XPASS"], c["SKIP"]))
    sys.exit(1 if c["FAIL"] + c["XPASS"] else 0)
