"""Live migration of a VM with hot-plugged CPUs, on every machine.

The source boots with -smp 1,maxcpus=4 and hot-plugs cpu1 and cpu2 (in the
"unplug1" variant it then unplugs cpu1 again).  The destination gets the
same command line plus a -device for each CPU still plugged, built from
the source's query-hotpluggable-cpus, and -incoming defer; the state moves
over a unix socket.  On the destination the guest must answer on its
console with the same online CPUs, QMP must show the same slots, and CPU
hotplug must go on working: plug a new CPU, unplug a migrated one."""
import os
import time

from hotplug import plug, unplug, slots, check_running
from vm import VM

SMP = "1,maxcpus=4"


def taken(vm):
    """{qom-path: (type, props)} of the plugged slots."""
    return {s["qom-path"]: (s["type"], s["props"]) for s in slots(vm)
            if "qom-path" in s}


def free(vm):
    """Props of the free slots, lowest first."""
    return [s["props"] for s in reversed(slots(vm)) if "qom-path" not in s]


def device_arg(dev_id, driver, props):
    return ",".join([driver, "id=" + dev_id] +
                    ["%s=%s" % kv for kv in sorted(props.items())])


def qemu_said(vm):
    """QEMU's own lines (errors) from the console, without the guest's."""
    return "\n".join(l for l in vm.text().split("\n")
                     if l.startswith("qemu-system") or "error" in l.lower()
                     )[-2000:] or "(nothing)"


def save_to_file(src, path, timeout=120):
    """Migrate src into a file (of src's QEMU's file system)."""
    src.qmp.cmd("migrate", uri="file:" + path)
    end = time.monotonic() + timeout
    while src.qmp.cmd("query-migrate").get("status") != "completed":
        assert time.monotonic() < end, "migration timeout"
        time.sleep(0.2)


def load_from_file(dst, path, timeout=120):
    """Start dst (-incoming defer) from a file save_to_file() wrote."""
    dst.qmp.cmd("migrate-incoming", uri="file:" + path)
    end = time.monotonic() + timeout
    while dst.qmp.cmd("query-status")["status"] != "running":
        assert time.monotonic() < end, "incoming timeout"
        time.sleep(0.2)


def migrate(src, dst, timeout=120):
    """unix: migration from src to dst (started with -incoming defer);
    returns seconds until the destination runs."""
    uri = "unix:" + os.path.join(dst.tmp, "migrate.sock")
    qd = dst.qmp.mark()
    t0 = time.monotonic()
    dst.qmp.cmd("migrate-incoming", uri=uri)
    src.qmp.cmd("migrate", uri=uri)
    end = t0 + timeout
    while True:
        info = src.qmp.cmd("query-migrate")
        st = info.get("status")
        if st == "completed":
            break
        assert st not in ("failed", "cancelled") and \
            time.monotonic() < end, \
            "migration %s: %s\nsource: %s\ndestination: %s\n%s" % (
                st, info.get("error-desc", ""), qemu_said(src),
                qemu_said(dst), "destination exited %s" % dst.proc.poll())
        time.sleep(0.1)
    while not dst.qmp.find_events("RESUME", qd):
        assert dst.proc.poll() is None and time.monotonic() < end, \
            "destination did not resume (%s)\ndestination: %s" % (
                "exited %s" % dst.proc.poll() if dst.proc.poll() is not None
                else dst.qmp.cmd("query-status"), qemu_said(dst))
        time.sleep(0.1)
    secs = time.monotonic() - t0
    check_running(dst)
    st = src.qmp.cmd("query-status")["status"]
    assert st == "postmigrate", "source status %s" % st
    return secs


def scenario(m, unplug_one):
    name = "%s/migrate-%s" % (m, "plug2-unplug1" if unplug_one else "plug2")

    def run(r):
        done = set()
        dst = None
        with VM(m, smp=SMP) as src:
            src.wait_ready()
            with r.case(name + "-source", src):
                p = free(src)
                plugged = {}                 # id -> (guest cpu, props)
                for i in (1, 2):
                    dev = "cpu%d" % i
                    plugged[dev] = (plug(src, dev, p[i - 1])["cpu"],
                                    p[i - 1])
                if unplug_one:
                    cpu, props = plugged.pop("cpu1")
                    unplug(src, "cpu1", cpu, props)
                before = src.cpus()
                assert len(before["online"]) == 1 + len(plugged), before
                slots_before = taken(src)
                devices = [device_arg(d, slots_before[
                    "/machine/peripheral/" + d][0], pr)
                    for d, (_, pr) in sorted(plugged.items())]
                done.add("source")
            if "source" not in done:
                return
            with r.case(name):
                dst = VM(m, smp=SMP, devices=devices, name=m + "-dst",
                         extra=["-incoming", "defer"])
                try:
                    secs = migrate(src, dst)
                except BaseException:
                    dst.close()
                    raise
                print("%s: migrated in %.1fs with %s" % (name, secs,
                                                         " ".join(devices)))
                done.add("migrated")
        if "migrated" not in done:
            return
        with dst:
            with r.case(name + "-guest-same-cpus", dst):
                after = dst.cpus()
                for k in ("online", "present", "devs"):
                    assert after[k] == before[k], \
                        "guest %s %s after migration, %s before" % (
                            k, after[k], before[k])
                assert taken(dst) == slots_before, \
                    "query-hotpluggable-cpus: %s after, %s before" % (
                        taken(dst), slots_before)
                for dev, (cpu, _) in plugged.items():
                    w = dst.guest("work %d" % cpu)
                    assert "@@WORK %d ran-on=%d" % (cpu, cpu) in w, w
            with r.case(name + "-plug-unplug-after", dst):
                new = plug(dst, "cpu3", free(dst)[0])["cpu"]
                cpu, props = plugged["cpu2"]
                unplug(dst, "cpu2", cpu, props)
                view = dst.cpus()
                want = (before["online"] | {new}) - {cpu}
                assert view["online"] == want, view
                check_running(dst)
    return run


def scenarios():
    return [("%s/migrate-%s" % (m, v), scenario(m, v == "plug2-unplug1"))
            for m in ("pc", "q35", "microvm", "virt")
            for v in ("plug2", "plug2-unplug1")]
