"""x86 end-to-end scenarios: pc and q35 with a real Linux guest."""
import os
import time

from hotplug import (plug, free_slot, unplug, slots, slot_of, qom_paths, expect_error,
                     assert_unharmed, check_running, FREED_POISON, load)
from harness import Skip
from vm import VM, cpu_driver

# Room for every plug of a scenario: with stock TCG an unplugged vCPU keeps
# its TCG context, so more than maxcpus plugs in total abort QEMU (that
# defect has its own scenario, "cycles").
TOPO = "1,sockets=2,cores=2,threads=2,maxcpus=8"


def basic(m, make_vm=VM, cpu=None):
    """Cold-plug, QMP and HMP plug/unplug, re-plug, bad input.  make_vm,
    cpu: another kind of VM (nested.NestedVM) and CPU model."""
    def scenario(r):
        cold = "%s,socket-id=0,core-id=1,thread-id=0,id=cold1" % \
            cpu_driver(m, cpu)
        with make_vm(m, smp=TOPO, devices=[cold], cpu=cpu) as vm:
            with r.case("%s/boot-coldplug" % m, vm):
                vm.wait_ready()
                print("%s: accel=%s boot=%.1fs" % (m, vm.accel, vm.boot_time))
                view = vm.cpus()
                assert view["online"] == {0, 1}, view
                assert view["possible"] == set(range(8)), view
                s = slot_of(vm, {"socket-id": 0, "core-id": 1,
                                 "thread-id": 0})
                assert s["qom-path"] == "/machine/peripheral/cold1", s
                assert s["type"] == cpu_driver(m, cpu), s
                assert len(slots(vm)) == 8
                assert "/machine/peripheral/cold1" in qom_paths(vm)

            with r.case("%s/console-line-cut-by-kernel" % m, vm):
                # The kernel's messages reach the serial port directly,
                # in the middle of a line that /init is writing when they
                # come (a CPU coming online prints while "cpus" answers):
                # the harness must still see that line whole.
                since = vm.mark()
                out = vm.guest("for i in 1 2 3 4 5 6; do printf '@@CUT %d-' "
                               "$i; echo '<4>cut probe' > /dev/kmsg; "
                               "echo rest; done")
                cut = [l for l in out if l.startswith("@@CUT")]
                assert cut == ["@@CUT %d-rest" % i for i in range(1, 7)], out
                assert vm.text(since).count("cut probe") == 6, out

            p1 = {"socket-id": 1, "core-id": 0, "thread-id": 0}
            with r.case("%s/hotplug-qmp" % m, vm):
                res = plug(vm, "vcpu1", p1)
                cpu1 = res["cpu"]
                cf = [c for c in vm.qmp.cmd("query-cpus-fast")
                      if c["qom-path"] == "/machine/peripheral/vcpu1"][0]
                assert cf["props"]["socket-id"] == 1, cf
                assert cf["props"]["core-id"] == 0, cf
                w = vm.guest("work %d" % cpu1)
                assert "@@WORK %d ran-on=%d" % (cpu1, cpu1) in w, w

            with r.case("%s/unplug-qmp-guest-removes" % m, vm):
                qsince = vm.qmp.mark()
                unplug(vm, "vcpu1", cpu1, p1, expect_deleted=False)
            with r.case("%s/unplug-qmp-device-deleted" % m, vm):
                t, ev = vm.qmp.wait_event("DEVICE_DELETED", 5, qsince,
                                          device="vcpu1")
                assert ev["data"]["path"] == "/machine/peripheral/vcpu1", ev

            with r.case("%s/replug-same-slot-same-id" % m, vm):
                cpu1 = plug(vm, "vcpu1", p1)["cpu"]

            with r.case("%s/bad-input" % m, vm):
                drv = cpu_driver(m, cpu)
                n = 3
                expect_error(vm, "Duplicate device ID 'vcpu1'",
                             "device_add", driver=drv, id="vcpu1",
                             **{"socket-id": 1, "core-id": 1,
                                "thread-id": 0})
                expect_error(vm, "CPU[4] with APIC ID 4 exists",
                             "device_add", driver=drv, id="dup",
                             **p1)
                expect_error(vm, "Invalid CPU socket-id: 2 must be in "
                             "range 0:1", "device_add", driver=drv,
                             id="far", **{"socket-id": 2, "core-id": 0,
                                          "thread-id": 0})
                expect_error(vm, "Invalid CPU core-id: 7 must be in "
                             "range 0:1", "device_add", driver=drv,
                             id="far", **{"socket-id": 1, "core-id": 7,
                                          "thread-id": 0})
                expect_error(vm, "CPU core-id is not set", "device_add",
                             driver=drv, id="nocore",
                             **{"socket-id": 1, "thread-id": 0})
                other = "Haswell-x86_64-cpu"
                expect_error(vm, "Invalid CPU type, expected cpu type: "
                             "'%s'" % drv, "device_add", driver=other,
                             id="wrong", **{"socket-id": 1, "core-id": 1,
                                            "thread-id": 0})
                boot = [c["qom-path"] for c in vm.qmp.cmd("query-cpus-fast")
                        if c["cpu-index"] == 0][0]
                expect_error(vm, "Boot CPU is unpluggable", "device_del",
                             id=boot)
                expect_error(vm, "Device 'nope' not found", "device_del",
                             id="nope")
                assert_unharmed(vm, n)

            with r.case("%s/hmp" % m, vm):
                p2 = {"socket-id": 1, "core-id": 1, "thread-id": 0}
                cpu2 = plug(vm, "hvcpu", p2, via="hmp")["cpu"]
                info = vm.hmp.cmd("info hotpluggable-cpus")
                assert 'qom_path: "/machine/peripheral/hvcpu"' in info, info
                assert info.count("type: \"%s\"" % cpu_driver(m, cpu)) == 8, \
                    info
                unplug(vm, "hvcpu", cpu2, p2, via="hmp")
                info = vm.hmp.cmd("info hotpluggable-cpus")
                assert "hvcpu" not in info, info
                out = vm.hmp.cmd("device_del nope")
                assert out == "Error: Device 'nope' not found", out

            with r.case("%s/unplug-coldplugged" % m, vm):
                unplug(vm, "cold1", 1, {"socket-id": 0, "core-id": 1,
                                        "thread-id": 0})

            with r.case("%s/device-del-twice" % m, vm):
                since = vm.mark()
                vm.qmp.cmd("device_del", id="vcpu1")
                try:
                    vm.qmp.cmd("device_del", id="vcpu1")
                except Exception as e:       # pending: an error is fine too
                    assert "vcpu1" in str(e), e
                vm.wait_line(r"^@@EV \S+ remove cpu%d$" % cpu1, 60, since)
                time.sleep(1)
                removes = [l for l in vm.text(since).split("\n")
                           if l.startswith("@@EV") and " remove " in l]
                assert len(removes) == 1, removes
                expect_error(vm, "Device 'vcpu1' not found", "device_del",
                             id="vcpu1")
                assert_unharmed(vm, 1)
    return scenario


def paused(m, smp=TOPO, p1=None, p2=None):
    """Plug while paused before boot (as libvirt starts a domain), then
    plug and unplug while paused after boot: nothing is lost.  p1, p2: the
    props of two free slots (x86 ones by default)."""
    p1 = p1 or {"socket-id": 0, "core-id": 1, "thread-id": 0}
    p2 = p2 or {"socket-id": 1, "core-id": 0, "thread-id": 0}

    def scenario(r):
        with VM(m, smp=smp, paused=True) as vm:
            with r.case("%s/paused-before-boot-plug" % m, vm):
                vm.qmp.cmd("device_add", driver=cpu_driver(m), id="pre1",
                           **p1)
                vm.qmp.cmd("cont")
                vm.wait_ready()
                view = vm.cpus()
                if view["online"] != {0, 1}:
                    # Present at boot or announced right after: either way
                    # the guest must bring it online by itself.
                    vm.wait_line(r"^@@EV \S+ online cpu1$", 30)
                    view = vm.cpus()
                assert view["online"] == {0, 1}, view
            with r.case("%s/paused-plug-then-cont" % m, vm):
                vm.qmp.cmd("stop")
                since = vm.mark()
                vm.qmp.cmd("device_add", driver=cpu_driver(m), id="pp",
                           **p2)
                time.sleep(1)
                assert "@@EV" not in vm.text(since), vm.text(since)
                vm.qmp.cmd("cont")
                _, mt = vm.wait_line(r"^@@EV \S+ online cpu(\d+)$", 60, since)
                cpu = int(mt.group(1))
                assert cpu in vm.cpus()["online"]
            with r.case("%s/paused-unplug-then-cont" % m, vm):
                vm.qmp.cmd("stop")
                since = vm.mark()
                vm.qmp.cmd("device_del", id="pp")
                time.sleep(1)
                assert "@@EV" not in vm.text(since), vm.text(since)
                vm.qmp.cmd("cont")
                vm.wait_line(r"^@@EV \S+ remove cpu%d$" % cpu, 60, since)
                assert vm.cpus()["online"] == {0, 1}
                check_running(vm)
    return scenario


def topology(m):
    """Sockets, dies, cores and threads: the guest places each plugged CPU
    where its ids say."""
    def scenario(r):
        smp = "1,sockets=2,dies=2,cores=2,threads=2,maxcpus=16"
        # qemu64 says AuthenticAMD, and Linux then derives the topology
        # the legacy AMD way (core id = APIC ID), ignoring leaf 0x1F.  An
        # Intel vendor string makes the guest read QEMU's leaf 0x1F.
        with VM(m, smp=smp, cpu="qemu64,vendor=GenuineIntel") as vm:
            vm.wait_ready()
            with r.case("%s/topology-slots" % m, vm):
                ss = slots(vm)
                assert len(ss) == 16, len(ss)
                keys = {tuple(sorted(s["props"])) for s in ss}
                assert keys == {("core-id", "die-id", "socket-id",
                                 "thread-id")}, keys
            plugged = {}
            for sock, die, core, thr in ((1, 1, 1, 0), (1, 1, 1, 1),
                                         (0, 1, 0, 1)):
                props = {"socket-id": sock, "die-id": die, "core-id": core,
                         "thread-id": thr}
                name = "t%d%d%d%d" % (sock, die, core, thr)
                with r.case("%s/topology-plug-%s" % (m, name), vm):
                    cpu = plug(vm, name, props)["cpu"]
                    plugged[name] = cpu
                    apic = vm.qmp.cmd("qom-get", path="/machine/peripheral/"
                                      + name, property="apic-id")
                    out = vm.guest(
                        "d=/sys/devices/system/cpu/cpu%d/topology; "
                        "echo @@T $(cat $d/physical_package_id) "
                        "$(cat $d/die_id); grep -E '^(processor|apicid)' "
                        "/proc/cpuinfo | tr -d ' \\t' | tr '\\n' ' '; echo"
                        % cpu)
                    t = [l for l in out if l.startswith("@@T")][0].split()
                    assert (int(t[1]), int(t[2])) == (sock, die), \
                        "guest package/die %s, expected %s" % (t, (sock, die))
                    info = out[-1].split()
                    pairs = dict(zip(info[0::2], info[1::2]))
                    assert pairs.get("processor:%d" % cpu) == \
                        "apicid:%d" % apic, (pairs, apic)
            with r.case("%s/topology-thread-siblings" % m, vm):
                a, b = plugged["t1110"], plugged["t1111"]
                out = vm.guest("cat /sys/devices/system/cpu/cpu%d/topology/"
                               "thread_siblings_list" % a)
                assert out and set(map(int, out[0].replace("-", ",").split(
                    ","))) == {a, b}, out
    return scenario


def cycles(m, n=6, smp="1,maxcpus=4", make_vm=VM):
    """More plug/unplug cycles than maxcpus, over every free slot in turn:
    no abort, DEVICE_DELETED every time, and QEMU's threads, open files
    and memory come back.  Used for every machine."""
    def scenario(r):
        with make_vm(m, smp=smp) as vm:
            vm.wait_ready()
            free = [s["props"] for s in slots(vm) if "qom-path" not in s]
            with r.case("%s/cycles-%d-beyond-maxcpus" % (m, n), vm):
                base_rss, base_thr = vm.pid_stats()
                # Under KVM a slot's vCPU fd stays open, parked for the next
                # CPU in the slot, once a CPU was there: count open files
                # from when every free slot has had one.
                base_fds = None
                warm = None
                for i in range(n):
                    props = free[i % len(free)]
                    cpu = plug(vm, "cyc%d" % i, props)["cpu"]
                    unplug(vm, "cyc%d" % i, cpu, props)
                    rss, thr = vm.pid_stats()
                    assert thr == base_thr, \
                        "cycle %d: %d threads, %d before" % (i, thr, base_thr)
                    fds = vm.pid_fds()
                    if i == len(free) - 1:
                        base_fds = fds
                    assert base_fds is None or fds == base_fds, \
                        "cycle %d: %d open fds, %d after cycle %d" % (
                            i, fds, base_fds, len(free) - 1)
                    if i == min(19, n - 1):
                        warm = rss
                assert_unharmed(vm, 1)
                print("%s: %d cycles: RSS %d KiB at start, %d after %d, "
                      "%d at end; threads %d; fds %d" % (
                          m, n, base_rss, warm, min(20, n), rss, thr, fds))
                # A leaked vCPU (object, TCG state, address spaces) costs
                # far more than 64 KiB a cycle; allocator and translation
                # cache noise stays within a few MiB in all.  Off under
                # ASan (scripts/asan.sh): its quarantine holds freed memory
                # by design, and LSan checks for leaks exactly instead.
                if n > 20 and not os.environ.get("E2E_NO_RSS_CHECK"):
                    assert rss - warm < 4096 + 64 * (n - 20), \
                        "RSS grew %d KiB over %d cycles" % (rss - warm,
                                                            n - 20)
    return scenario


def busy_unplug(m, n=3):
    """Unplug while CPU 0 runs a busy loop in the guest, the new CPU too
    until the guest offlines it.  The unplugged vCPU's thread waits for an
    RCU grace period before it exits, and a TCG vCPU in a busy loop stays
    in its RCU read-side section until it is kicked: with a wait that did
    not kick (synchronize_rcu()), QEMU hung in the first unplug (found by
    make soak)."""
    def scenario(r):
        with VM(m, smp="1,maxcpus=2") as vm:
            vm.wait_ready()
            props = free_slot(vm)
            with r.case("%s/unplug-while-cpu0-busy" % m, vm):
                load(vm, 0)
                for i in range(n):
                    cpu = plug(vm, "busy%d" % i, props, timeout=20)["cpu"]
                    load(vm, cpu)
                    unplug(vm, "busy%d" % i, cpu, props, timeout=20)
                assert_unharmed(vm, 1)
    return scenario


def single_thread_tcg(m, n=20):
    """With one round-robin thread for all vCPUs, n plug/unplug cycles.
    The unplug completes in a main-loop bottom half while the round-robin
    loop may hold the vCPU as the one to resume from; freed memory is
    poisoned so that resuming from a freed vCPU fails here (it hung within
    6 cycles when the loop did so) rather than only under ASan."""
    def scenario(r):
        with VM(m, smp="1,maxcpus=2", accel="tcg,thread=single",
                env=FREED_POISON) as vm:
            vm.wait_ready()
            props = free_slot(vm)
            with r.case("%s/tcg-single-thread-plug-unplug" % m, vm):
                for i in range(n):
                    cpu = plug(vm, "st%d" % i, props, timeout=20)["cpu"]
                    unplug(vm, "st%d" % i, cpu, props, timeout=20)
                assert_unharmed(vm, 1)
    return scenario


def kernel_612(m, accel=None):
    """Debian's current kernel ignores CPUs that are neither Enabled nor
    Online Capable when it does not recognise the hypervisor (TCG):
    acpi-online-capable, on by default on the pc/q35 aliases (the -cpuhp1
    machine types) and on microvm, describes them as ACPI 6.3 asks.  accel: e.g.
    "tcg,thread=single" (one round-robin thread for every vCPU)."""
    what = "tcg-single-thread" if accel else "online-capable"

    def scenario(r):
        with VM(m, smp="1,maxcpus=4", kernel="vmlinuz-x86-6.12",
                accel=accel) as vm:
            vm.wait_ready()
            with r.case("%s/linux-6.12-%s-plug-unplug" % (m, what), vm):
                view = vm.cpus()
                assert view["possible"] == {0, 1, 2, 3}, view
                # Online Capable is ACPI 6.3: a revision 5 MADT, a 6.3 FADT
                revs = [vm.guest("od -An -tu1 -j%d -N1 /sys/firmware/acpi/"
                                 "tables/%s" % (off, t))[0].strip()
                        for t, off in (("APIC", 8), ("FACP", 8),
                                       ("FACP", 131))]
                assert revs == ["5", "6", "3"], \
                    "MADT revision, FADT revision.minor: %s, expected " \
                    "5, 6.3" % revs
                for i in range(2):
                    props = free_slot(vm)
                    since = vm.mark()
                    cpu = plug(vm, "k%d" % i, props)["cpu"]
                    w = vm.guest("work %d" % cpu)
                    assert "@@WORK %d ran-on=%d" % (cpu, cpu) in w, w
                    unplug(vm, "k%d" % i, cpu, props)
                    # 6.12 also reports bind/unbind of the cpuN device
                    ev = [l.split()[2] for l in vm.text(since).split("\n")
                          if l.startswith("@@EV ") and
                          l.endswith(" cpu%d" % cpu) and l.split()[2] in
                          ("add", "online", "offline", "remove")]
                    assert ev == ["add", "online", "offline", "remove"], \
                        "guest events for cpu%d: %s" % (cpu, ev)
                assert_unharmed(vm, 1)
    return scenario


def apic_id_limit(m):
    """A slot whose APIC ID needs x2APIC, with a CPU model that lacks it:
    device_add must fail cleanly, not abort QEMU."""
    def scenario(r):
        with VM(m, smp="1,sockets=300,maxcpus=300") as vm:
            vm.wait_ready(timeout=240)
            with r.case("%s/apic-id-needs-x2apic-error" % m, vm):
                e = vm.qmp.error_of("device_add", driver=cpu_driver(m),
                                    id="big", **{"socket-id": 260,
                                                 "core-id": 0,
                                                 "thread-id": 0})
                assert e.desc == "APIC ID 260 requires x2APIC feature " \
                    "in CPU", e.desc
                assert_unharmed(vm, 1)
    return scenario


def scenarios():
    out = []
    for m in ("pc", "q35"):
        out += [("%s/basic" % m, basic(m)), ("%s/paused" % m, paused(m))]
    out += [("q35/cycles", cycles("q35", 200)), ("pc/cycles", cycles("pc"))]
    out += [("q35/topology", topology("q35")),
            ("q35/single-thread", single_thread_tcg("q35")),
            ("pc/single-thread", single_thread_tcg("pc")),
            ("q35/busy-unplug", busy_unplug("q35")),
            ("pc/busy-unplug", busy_unplug("pc")),
            ("microvm/busy-unplug", busy_unplug("microvm")),
            ("q35/linux-6.12", kernel_612("q35")),
            ("pc/linux-6.12", kernel_612("pc")),
            ("microvm/linux-6.12", kernel_612("microvm")),
            ("q35/linux-6.12-single-thread",
             kernel_612("q35", "tcg,thread=single")),
            ("pc/linux-6.12-single-thread",
             kernel_612("pc", "tcg,thread=single")),
            ("q35/apic-id-limit", apic_id_limit("q35"))]
    return out
