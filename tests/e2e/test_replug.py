"""Re-plug a slot the moment DEVICE_DELETED arrives, with a new id each
round, as "virsh setvcpus" down then up does, while a guest agent onlines
new CPUs by polling sysfs and the kernel is quiet.  QEMU used to emit
DEVICE_DELETED when the guest wrote the eject bit, before the guest had
read _STA and sent its _OST, so the new CPU raced the end of the old
one's eject: the _OST was reported for the new CPU and Linux arm64 lost
the new CPU after a few rounds.  Every round must get the new CPU online
in the guest, and every eject _OST must name the CPU that was ejected,
before its DEVICE_DELETED."""
import os
import time

from hotplug import free_slot, slot_of
from vm import VM, cpu_driver

ROUNDS = int(os.environ.get("REPLUG_ROUNDS", 50))
# sysfs poller: what a simple agent (or a udev-less guest tool) does
AGENT = ("(while :; do for f in /sys/devices/system/cpu/cpu[1-9]*/online; "
         "do [ \"$(cat $f 2>/dev/null)\" = 0 ] && echo 1 > $f; done; "
         "sleep 0.02; done) </dev/null >/dev/null 2>&1 & :")


def wait_second_cpu_online(vm, timeout=30):
    """The guest's number of the one hot-plugged CPU, once it is online."""
    end = time.monotonic() + timeout
    while True:
        view = vm.cpus()
        extra = view["online"] - {0}
        if len(extra) == 1:
            return extra.pop(), view
        if time.monotonic() > end:
            raise AssertionError("new CPU not online in the guest after "
                                 "%ds: %s" % (timeout, view))
        time.sleep(0.1)


def race(m, kernel=None):
    def scenario(r):
        with VM(m, smp="1,maxcpus=2", kernel=kernel,
                append="no-autoonline") as vm:
            vm.wait_ready()
            print("%s/replug-race: accel=%s kernel=%s" % (
                m, vm.accel, kernel or "default"))
            vm.guest("echo 1 > /proc/sys/kernel/printk")   # quiet kernel
            vm.guest(AGENT)
            props, drv = free_slot(vm), cpu_driver(m)
            with r.case("%s/replug-race-%d-rounds" % (m, ROUNDS), vm):
                q = vm.qmp.mark()
                vm.qmp.cmd("device_add", driver=drv, id="r0", **props)
                t0 = time.monotonic()
                for i in range(ROUNDS):
                    dev = "r%d" % i
                    cpu, view = wait_second_cpu_online(vm)
                    assert slot_of(vm, props).get("qom-path") == \
                        "/machine/peripheral/" + dev, slot_of(vm, props)
                    # guests with /sys/devices/system/cpu/enabled (6.11+)
                    assert view["enabled"] in ({0, cpu}, set()), view
                    mark = vm.qmp.mark()
                    vm.qmp.cmd("device_del", id=dev)
                    t_del, _ = vm.qmp.wait_event("DEVICE_DELETED", 30, mark,
                                                 device=dev)
                    # at once, as a management layer does
                    vm.qmp.cmd("device_add", driver=drv, id="r%d" % (i + 1),
                               **props)
                    osts = [(t, e["data"]["info"]) for t, e in
                            vm.qmp.find_events("ACPI_DEVICE_OST", mark)
                            if e["data"]["info"]["source"] in (3, 0x103)]
                    assert osts and osts[-1][1].get("device") == dev and \
                        osts[-1][1]["status"] == 0 and osts[-1][0] <= t_del, \
                        "round %d: eject _OST events %s, DEVICE_DELETED " \
                        "for %s at %.3f" % (i, osts, dev, t_del)
                cpu, view = wait_second_cpu_online(vm)
                strays = [e["data"]["info"] for _, e in
                          vm.qmp.find_events("ACPI_DEVICE_OST", q)
                          if e["data"]["info"]["source"] in (3, 0x103) and
                          e["data"]["info"].get("device") == "r%d" % ROUNDS]
                assert not strays, "eject _OST for a CPU never ejected: %s" \
                    % strays
                print("%s/replug-race: %d rounds in %.1fs" % (
                    m, ROUNDS, time.monotonic() - t0))
    return scenario


def scenarios():
    return [("virt/replug-race", race("virt")),
            ("q35/replug-race-linux-6.12", race("q35", "vmlinuz-x86-6.12"))]
