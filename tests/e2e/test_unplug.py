"""Unplug that a management layer can rely on (every machine): a guest
that refuses, a guest that does not answer (timeout), a late eject,
device_del while a request is pending, the unplug-pending member of
query-hotpluggable-cpus and its HMP form."""
import re
import subprocess
import time

from hotplug import (plug, free_slot, unplug, slots, slot_of, qom_paths,
                     expect_error,
                     check_running)
from vm import VM, QEMU_BUILD, MACHINES, FW_DIRS
from test_migration import migrate, device_arg

MACHINES_ALL = ("pc", "q35", "microvm", "virt")
TIMEOUT = 3          # cpu-unplug-timeout of these scenarios, seconds
REFUSED_TIMEOUT = 8  # long enough to tell a refusal from a timeout


def pending(vm, props):
    """unplug-pending of a plugged CPU's slot (the member must be there)."""
    s = slot_of(vm, props)
    assert "qom-path" in s, "slot %s is empty: %s" % (props, s)
    assert "unplug-pending" in s, "no unplug-pending member: %s" % s
    return s["unplug-pending"]


def hmp_pending(vm, dev_id):
    """unplug_pending printed by HMP for the CPU with this id."""
    out = vm.hmp.cmd("info hotpluggable-cpus")
    block = out.split('qom_path: "/machine/peripheral/%s"' % dev_id)
    assert len(block) == 2, "HMP lists no %s:\n%s" % (dev_id, out)
    m = re.match(r'\s*unplug_pending: "(yes|no)"', block[1])
    assert m, "HMP: no unplug_pending after %s:\n%s" % (dev_id, out)
    return m.group(1)


def assert_working(vm, dev_id, cpu, props):
    """The CPU is still plugged in QEMU and online and usable in the guest."""
    check_running(vm)
    path = "/machine/peripheral/" + dev_id
    assert slot_of(vm, props).get("qom-path") == path
    assert path in qom_paths(vm), "query-cpus-fast lacks %s" % path
    view = vm.cpus()
    assert cpu in view["online"], "guest online %s lacks %d" % (
        view["online"], cpu)
    w = vm.guest("work %d" % cpu)
    assert "@@WORK %d ran-on=%d" % (cpu, cpu) in w, w


def no_event(vm, name, secs, since, **data):
    time.sleep(secs)
    got = vm.qmp.find_events(name, since, **data)
    assert not got, "unexpected %s: %s" % (name, got)


def with_cpu1(m, name, opts, body, make_vm=VM):
    """A scenario: boot machine m with these machine options, plug cpu1
    into a free slot, then body(r, vm, props, guest cpu number)."""
    def scenario(r):
        with make_vm(m, machine_opts=opts, name=name) as vm:
            vm.wait_ready()
            print("%s/%s: accel=%s" % (m, name, vm.accel))
            props = free_slot(vm)
            body(r, vm, props, plug(vm, "cpu1", props)["cpu"])
    return scenario


def refused_body(m):
    """The guest vetoes the eject of "cpu1": DEVICE_UNPLUG_GUEST_ERROR, CPU
    kept, and a later device_del succeeds.  The machine needs
    cpu-unplug-timeout=REFUSED_TIMEOUT."""
    def body(r, vm, props, cpu):
        with r.case("%s/refused-guest-error" % m, vm):
            assert pending(vm, props) is False
            assert vm.guest("veto 1") == ["@@VETO 1"]
            q, since = vm.qmp.mark(), vm.mark()
            vm.qmp.cmd("device_del", id="cpu1")
            t_del = time.monotonic()
            # well before the timeout could have fired
            t, ev = vm.qmp.wait_event("DEVICE_UNPLUG_GUEST_ERROR",
                                      REFUSED_TIMEOUT - 2, q, device="cpu1")
            assert ev["data"]["path"] == "/machine/peripheral/cpu1", ev
            q_err = vm.qmp.mark()
            ost = vm.qmp.find_events("ACPI_DEVICE_OST", q)
            assert any(e["data"]["info"]["status"] not in (0, 0x84)
                       for _, e in ost), "no failing _OST: %s" % ost
            assert "remove cpu%d" % cpu not in vm.text(since)
        with r.case("%s/refused-cpu-kept-working" % m, vm):
            no_event(vm, "DEVICE_DELETED", 1, q)
            assert pending(vm, props) is False
            assert_working(vm, "cpu1", cpu, props)
            # the refused request must not fire as a timeout later
            no_event(vm, "DEVICE_UNPLUG_GUEST_ERROR",
                     REFUSED_TIMEOUT - (time.monotonic() - t_del) + 1, q_err)
            errs = vm.qmp.find_events("DEVICE_UNPLUG_GUEST_ERROR", q)
            assert len(errs) == 1, errs
        with r.case("%s/refused-then-retry-succeeds" % m, vm):
            assert vm.guest("veto 0") == ["@@VETO 0"]
            unplug(vm, "cpu1", cpu, props)
    return body


def refused(m, make_vm=VM):
    return with_cpu1(m, "refused", "cpu-unplug-timeout=%d" % REFUSED_TIMEOUT,
                     refused_body(m), make_vm)


def ignored_body(m, timeout=TIMEOUT):
    """With cpu-unplug-timeout=timeout, the guest does not answer: pending
    is visible, another device_del is refused until the deadline (qdev's
    pending-unplug state), DEVICE_UNPLUG_GUEST_ERROR, a late eject keeps
    the CPU, and device_del can succeed afterwards."""
    TIMEOUT = timeout

    def body(r, vm, props, cpu):
        with r.case("%s/ignored-pending-visible" % m, vm):
            assert vm.guest("deaf 1") == ["@@DEAF 1"]
            q, since = vm.qmp.mark(), vm.mark()
            t_del = time.monotonic()
            vm.qmp.cmd("device_del", id="cpu1")
            assert pending(vm, props) is True
            assert hmp_pending(vm, "cpu1") == "yes"
        with r.case("%s/ignored-retry-refused-until-timeout" % m, vm):
            time.sleep(TIMEOUT - 1.5)
            expect_error(vm, "Device cpu1 is already in the process of "
                         "unplug", "device_del", id="cpu1")
            assert pending(vm, props) is True
        with r.case("%s/ignored-timeout-guest-error" % m, vm):
            t, ev = vm.qmp.wait_event("DEVICE_UNPLUG_GUEST_ERROR",
                                      TIMEOUT + 10, q, device="cpu1")
            assert ev["data"]["path"] == "/machine/peripheral/cpu1", ev
            waited = t - t_del
            print("%s/ignored: DEVICE_UNPLUG_GUEST_ERROR %.2fs after "
                  "device_del" % (m, waited))
            assert waited >= TIMEOUT - 0.1, waited
            assert pending(vm, props) is False
            assert hmp_pending(vm, "cpu1") == "no"
            assert "remove cpu%d" % cpu not in vm.text(since)
        with r.case("%s/late-eject-keeps-cpu" % m, vm):
            # The guest listens again and ejects the CPU on its own
            # after the request was dropped: QEMU keeps the CPU and
            # the guest brings it back after the Device Check.
            assert vm.guest("deaf 0") == ["@@DEAF 0"]
            since, q_del = vm.mark(), vm.qmp.mark()
            slot = [i for i, s in enumerate(reversed(slots(vm)))
                    if s["props"] == props][0]
            assert vm.guest("eject %d" % cpu) == ["@@EJECT %d" % cpu]
            vm.wait_line(r"^@@EV \S+ offline cpu%d$" % cpu, 30, since)
            # the guest answers the Device Check QEMU sent
            vm.qmp.wait_event("ACPI_DEVICE_OST", 30, q_del,
                              info={"device": "cpu1", "source": 1,
                                    "status": 0, "slot": str(slot),
                                    "slot-type": "CPU"})
            if m == "virt":
                # Linux arm64 keeps the processor registered (present
                # and enabled) and only offline: an agent onlines it.
                view = vm.cpus()
                assert cpu in view["devs"] and cpu in view["enabled"], \
                    view
                vm.guest("echo 1 > /sys/devices/system/cpu/cpu%d/online"
                         % cpu)
            vm.wait_line(r"^@@EV \S+ online cpu%d$" % cpu, 30, since)
            no_event(vm, "DEVICE_DELETED", 1, q)
            s = slot_of(vm, props)
            assert s.get("qom-path") == "/machine/peripheral/cpu1", s
            assert s["unplug-pending"] is False, s
            assert_working(vm, "cpu1", cpu, props)
            errs = vm.qmp.find_events("DEVICE_UNPLUG_GUEST_ERROR", q)
            assert len(errs) == 1, errs
        with r.case("%s/after-timeout-unplug-succeeds" % m, vm):
            unplug(vm, "cpu1", cpu, props)
    return body


def ignored(m, make_vm=VM):
    return with_cpu1(m, "ignored", "cpu-unplug-timeout=%d" % TIMEOUT,
                     ignored_body(m), make_vm)


def forever(m):
    """cpu-unplug-timeout=0 (the default) waits as long as it takes: the
    request stays pending while the guest is deaf, device_del re-sends
    it, and it completes when the guest listens."""
    def body(r, vm, props, cpu):
        with r.case("%s/timeout-0-stays-pending" % m, vm):
            got = vm.qmp.cmd("qom-get", path="/machine",
                             property="cpu-unplug-timeout")
            assert got == 0, got
            assert vm.guest("deaf 1") == ["@@DEAF 1"]
            q, since = vm.qmp.mark(), vm.mark()
            vm.qmp.cmd("device_del", id="cpu1")
            no_event(vm, "DEVICE_UNPLUG_GUEST_ERROR", TIMEOUT + 2, q)
            assert pending(vm, props) is True
            assert "remove cpu%d" % cpu not in vm.text(since)
            # without a deadline another device_del re-sends at once
            assert vm.qmp.cmd("device_del", id="cpu1") == {}
        with r.case("%s/timeout-0-completes-late" % m, vm):
            # A deaf guest missed the notification; device_del
            # re-sends it once the guest listens again.
            assert vm.guest("deaf 0") == ["@@DEAF 0"]
            if not vm.qmp.find_events("DEVICE_DELETED", q):
                vm.qmp.cmd("device_del", id="cpu1")
            t, ev = vm.qmp.wait_event("DEVICE_DELETED", 10, q,
                                      device="cpu1")
            assert ev["data"]["path"] == "/machine/peripheral/cpu1", ev
            vm.wait_line(r"^@@EV \S+ remove cpu%d$" % cpu, 10, since)
            assert "qom-path" not in slot_of(vm, props)
            errs = vm.qmp.find_events("DEVICE_UNPLUG_GUEST_ERROR", q)
            assert not errs, errs
    return with_cpu1(m, "forever", "", body)


def unrequested(m):
    """Without cpu-unplug-timeout (the default) an eject the guest does on
    its own is carried out, as in stock QEMU (firmware such as OVMF's SMM
    CPU hot-unplug relies on it): DEVICE_DELETED, and the slot is free."""
    def body(r, vm, props, cpu):
        with r.case("%s/unrequested-eject-removes" % m, vm):
            q, since = vm.qmp.mark(), vm.mark()
            assert vm.guest("eject %d" % cpu) == ["@@EJECT %d" % cpu]
            t, ev = vm.qmp.wait_event("DEVICE_DELETED", 30, q,
                                      device="cpu1")
            assert ev["data"]["path"] == "/machine/peripheral/cpu1", ev
            vm.wait_line(r"^@@EV \S+ remove cpu%d$" % cpu, 30, since)
            assert "qom-path" not in slot_of(vm, props)
            assert not vm.qmp.find_events("DEVICE_UNPLUG_GUEST_ERROR", q)
    return with_cpu1(m, "unrequested", "", body)


def migrate_pending(m):
    """A request pending at migration stays pending on the destination,
    times out there, and the CPU can be unplugged afterwards."""
    opts = "cpu-unplug-timeout=6"

    def scenario(r):
        dst = None
        with VM(m, machine_opts=opts, name="pend-src") as src:
            src.wait_ready()
            props = free_slot(src)
            cpu = plug(src, "cpu1", props)["cpu"]
            with r.case("%s/migrate-pending-unplug" % m, src):
                assert src.guest("deaf 1") == ["@@DEAF 1"]
                q = src.qmp.mark()
                src.qmp.cmd("device_del", id="cpu1")
                t_del = time.monotonic()
                assert pending(src, props) is True
                drv = slot_of(src, props)["type"]
                dst = VM(m, machine_opts=opts, name="pend-dst",
                         devices=[device_arg("cpu1", drv, props)],
                         extra=["-incoming", "defer"])
                try:
                    migrate(src, dst)
                except BaseException:
                    dst.close()
                    dst = None
                    raise
                assert not src.qmp.find_events("DEVICE_UNPLUG_GUEST_ERROR",
                                               q)
                assert pending(dst, props) is True
        if dst is None:
            return
        with dst:
            with r.case("%s/migrate-pending-times-out-on-destination" % m,
                        dst):
                t, ev = dst.qmp.wait_event("DEVICE_UNPLUG_GUEST_ERROR", 30,
                                           0, device="cpu1")
                assert ev["data"]["path"] == "/machine/peripheral/cpu1", ev
                print("%s: DEVICE_UNPLUG_GUEST_ERROR on the destination "
                      "%.1fs after device_del on the source" % (m, t - t_del))
                assert pending(dst, props) is False
                assert_working(dst, "cpu1", cpu, props)
            with r.case("%s/migrate-pending-then-unplug" % m, dst):
                assert dst.guest("deaf 0") == ["@@DEAF 0"]
                unplug(dst, "cpu1", cpu, props)
    return scenario


def property_checks(r):
    """Default value per machine, and a bad value is refused by name."""
    for m in MACHINES_ALL:
        arch, mval = MACHINES[m][0], MACHINES[m][1]
        binary = "%s/qemu-system-%s" % (QEMU_BUILD, arch)
        fw = [a for d in FW_DIRS for a in ("-L", d)]
        with r.case("%s/cpu-unplug-timeout-default" % m):
            out = subprocess.run(
                [binary, "-M", mval.split(",")[0] + ",help"],
                capture_output=True, text=True, timeout=60).stdout
            line = [ln for ln in out.splitlines()
                    if "cpu-unplug-timeout=" in ln]
            assert line, "no cpu-unplug-timeout in -M %s,help" % mval
            assert "(default: 0)" in line[0], line[0]
            qmp = ('{"execute": "qmp_capabilities"}\n'
                   '{"execute": "qom-get", "arguments": {"path": "/machine",'
                   ' "property": "cpu-unplug-timeout"}}\n'
                   '{"execute": "quit"}\n')
            p = subprocess.run(
                [binary, "-M", mval, "-display", "none", "-nodefaults",
                 "-S", "-qmp", "stdio"] + fw, input=qmp,
                capture_output=True, text=True, timeout=60)
            assert '{"return": 0}' in p.stdout, p.stdout + p.stderr
        with r.case("%s/cpu-unplug-timeout-bad-value" % m):
            for bad in ("soon", "-1", "4294967296"):
                p = subprocess.run(
                    [binary, "-M", mval + ",cpu-unplug-timeout=" + bad,
                     "-display", "none", "-nodefaults", "-S"] + fw,
                    capture_output=True, text=True, timeout=60)
                assert p.returncode == 1, "QEMU accepted %s (rc %d)" % (
                    bad, p.returncode)
                assert "Parameter 'cpu-unplug-timeout' expects" in \
                    p.stderr, p.stderr


def scenarios():
    out = [("unplug/property", property_checks)]
    for m in MACHINES_ALL:
        out += [("%s/refused" % m, refused(m)),
                ("%s/ignored" % m, ignored(m)),
                ("%s/forever" % m, forever(m)),
                ("%s/unrequested" % m, unrequested(m)),
                ("%s/migrate-pending" % m, migrate_pending(m))]
    return out
