"""microvm end-to-end scenarios: the x86 matrix through the GED, plus what
is specific to microvm (no ACPI, unchanged migration stream)."""
import os
import tempfile
import time

import test_x86
from hotplug import free_slot, assert_unharmed, expect_error
from vm import VM, cpu_driver, ROOT as VM_ROOT


def no_acpi(r):
    """acpi=off: nothing can tell the guest, so device_add must refuse."""
    with VM("microvm-noacpi", smp="1,sockets=2,maxcpus=2") as vm:
        vm.wait_ready()
        with r.case("microvm/acpi-off-device-add-refused", vm):
            expect_error(vm, "CPU hotplug on microvm requires ACPI (acpi=on)",
                         "device_add", driver=cpu_driver("microvm"),
                         id="c1", **free_slot(vm))
            assert_unharmed(vm, 1)


def stream_has_cpuhp(smp):
    """Migrate a paused microvm to a file; does the stream carry the GED's
    CPU hotplug state?"""
    with VM("microvm", smp=smp, paused=True) as vm:
        path = os.path.join(vm.tmp, "stream")
        vm.qmp.cmd("migrate", uri="file:" + path)
        for _ in range(600):
            st = vm.qmp.cmd("query-migrate").get("status")
            if st in ("completed", "failed"):
                break
            time.sleep(0.1)
        assert st == "completed", "migration %s" % st
        with open(path, "rb") as f:
            data = f.read()
    assert b"acpi-ged" in data, "no GED in the stream"
    return b"acpi-ged/cpuhp" in data


def migration_stream(r):
    with r.case("microvm/stream-unchanged-without-free-slot"):
        assert not stream_has_cpuhp("1"), \
            "maxcpus == cpus: stream carries acpi-ged/cpuhp (not stock 10.0)"
    with r.case("microvm/stream-has-cpuhp-with-free-slot"):
        assert stream_has_cpuhp("1,maxcpus=2"), "no acpi-ged/cpuhp section"


def scenarios():
    m = "microvm"
    return [("microvm/basic", test_x86.basic(m)),
            ("microvm/paused", test_x86.paused(m)),
            ("microvm/cycles", test_x86.cycles(m, 20)),
            ("microvm/no-acpi", no_acpi),
            ("microvm/migration-stream", migration_stream),
            ("microvm/tables-as-stock", tables_as_stock)]


def tables_as_stock(r):
    """With maxcpus == cpus the guest's DSDT and MADT are byte for byte
    QEMU 10.0's expected microvm tables (tests/data/acpi/x86/microvm),
    booted in the configuration of bios-tables-test's microvm case."""
    expected = os.path.join(VM_ROOT, "build/qemu/tests/data/acpi/x86/microvm")
    disk = tempfile.NamedTemporaryFile(suffix=".raw")
    disk.truncate(1 << 20)
    with VM("microvm", smp="1", mem="128M",
            machine_opts="ioapic2=off,rtc=off",
            extra=["-drive", "id=hd0,if=none,file=%s,format=raw" % disk.name,
                   "-device", "virtio-blk-device,drive=hd0"]) as vm:
        vm.wait_ready()
        for table in ("DSDT", "APIC"):
            with r.case("microvm/tables-as-stock-%s" % table, vm):
                out = vm.guest("od -An -v -tx1 /sys/firmware/acpi/tables/%s"
                               % table, timeout=60)
                got = bytes(int(x, 16) for line in out for x in line.split())
                with open(os.path.join(expected, table), "rb") as f:
                    want = f.read()
                assert got == want, "%s differs from stock: %d vs %d bytes" \
                    % (table, len(got), len(want))
