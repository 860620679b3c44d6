"""Hot-plug steps shared by the scenarios: each does the QMP (or HMP)
command, then waits for what the guest and QMP must show, and returns the
measured latencies.  Assertions say what was expected and what was seen."""
import statistics
import time

from qmp import QMPError

# Environment for a QEMU whose freed memory must not look valid: glibc
# fills every freed block with 0xa5, so a use after free of, say, a vCPU's
# work list mutex fails or hangs instead of reading the old contents.
FREED_POISON = {"MALLOC_PERTURB_": "165"}


def load(vm, cpu):
    """Start a busy loop on guest CPU cpu (until the CPU goes offline)."""
    out = vm.guest("load %d" % cpu)
    assert any(l.startswith("@@LOAD %d " % cpu) for l in out), out


def slots(vm):
    return vm.qmp.cmd("query-hotpluggable-cpus")


def slot_of(vm, props):
    for s in slots(vm):
        if all(s["props"].get(k) == v for k, v in props.items()):
            return s
    raise AssertionError("no slot with props %s" % props)


def free_slot(vm):
    """Props of the lowest free slot."""
    free = [s for s in slots(vm) if "qom-path" not in s]
    assert free, "no free CPU slot"
    return free[-1]["props"]


def qom_paths(vm):
    return {c["qom-path"] for c in vm.qmp.cmd("query-cpus-fast")}


def check_running(vm):
    st = vm.qmp.cmd("query-status")
    assert st["status"] == "running", "VM status %s" % st


def plug(vm, dev_id, props, driver=None, via="qmp", timeout=60):
    """device_add a CPU and wait until the guest has it online.
    Returns dict(cpu=guest cpu number, seen=s, online=s)."""
    from vm import cpu_driver
    driver = driver or cpu_driver(vm.machine, vm.cpu)
    since = vm.mark()
    t0 = time.monotonic()
    if via == "qmp":
        vm.qmp.cmd("device_add", driver=driver, id=dev_id, **props)
    else:
        line = "device_add %s,%s,id=%s" % (driver, ",".join(
            "%s=%s" % (k, v) for k, v in props.items()), dev_id)
        out = vm.hmp.cmd(line)
        assert out == "", "HMP %r printed %r" % (line, out)
    t_add, m = vm.wait_line(r"^@@EV \S+ add cpu(\d+)$", timeout, since)
    cpu = int(m.group(1))
    t_on, _ = vm.wait_line(r"^@@EV \S+ online cpu%d$" % cpu, timeout, since)
    path = "/machine/peripheral/" + dev_id
    assert slot_of(vm, props).get("qom-path") == path, \
        "query-hotpluggable-cpus slot %s: %s" % (props, slot_of(vm, props))
    assert path in qom_paths(vm), "query-cpus-fast lacks %s" % path
    view = vm.cpus()
    assert cpu in view["online"], "guest online %s lacks %d" % (
        view["online"], cpu)
    return {"cpu": cpu, "seen": t_add - t0, "online": t_on - t0}


def unplug(vm, dev_id, cpu, props, via="qmp", timeout=60,
           expect_deleted=True):
    """device_del a CPU; wait for the guest to remove it and, when
    expect_deleted, for DEVICE_DELETED naming the id and path.
    Returns dict(removed=s, deleted=s or None)."""
    since, qsince = vm.mark(), vm.qmp.mark()
    t0 = time.monotonic()
    if via == "qmp":
        vm.qmp.cmd("device_del", id=dev_id)
    else:
        out = vm.hmp.cmd("device_del %s" % dev_id)
        assert out == "", "HMP device_del printed %r" % out
    t_rm, _ = vm.wait_line(r"^@@EV \S+ remove cpu%d$" % cpu, timeout, since)
    res = {"removed": t_rm - t0, "deleted": None}
    view = vm.cpus()
    assert cpu not in view["online"] and cpu not in view["devs"], \
        "guest still lists cpu%d: %s" % (cpu, view)
    if expect_deleted:
        path = "/machine/peripheral/" + dev_id
        # libvirt gives up after 5 s
        t_del, ev = vm.qmp.wait_event("DEVICE_DELETED", 5, qsince,
                                      device=dev_id)
        assert ev["data"].get("path") == path, ev
        res["deleted"] = t_del - t0
    s = slot_of(vm, props)
    assert "qom-path" not in s, "slot still taken after unplug: %s" % s
    assert "/machine/peripheral/" + dev_id not in qom_paths(vm)
    return res


def expect_error(vm, expected, name, **args):
    """A QMP command must fail with exactly this message."""
    e = vm.qmp.error_of(name, **args)
    assert e.desc == expected, "%s %s: error %r, expected %r" % (
        name, args, e.desc, expected)
    return e


def assert_unharmed(vm, n_cpus):
    """After bad input: VM running, guest answering, no CPU leaked."""
    check_running(vm)
    n = len(vm.qmp.cmd("query-cpus-fast"))
    assert n == n_cpus, "query-cpus-fast: %d CPUs, expected %d" % (n, n_cpus)
    taken = [s for s in slots(vm) if "qom-path" in s]
    assert len(taken) == n_cpus, "taken slots %d, expected %d" % (
        len(taken), n_cpus)
    view = vm.cpus()
    assert len(view["online"]) == n_cpus, "guest online %s, expected %d" % (
        view["online"], n_cpus)


def timed_cycles(vm, label, props, rounds):
    """plug then unplug the slot props, rounds times (ids lat0, lat1...);
    print device_add -> online and device_del -> DEVICE_DELETED as
    min / median / max; no CPU may be left over."""
    on, deleted = [], []
    for i in range(rounds):
        res = plug(vm, "lat%d" % i, props)
        on.append(res["online"])
        deleted.append(unplug(vm, "lat%d" % i, res["cpu"], props)["deleted"])
    assert_unharmed(vm, 1)
    for what, v in (("device_add -> online", on),
                    ("device_del -> DEVICE_DELETED", deleted)):
        print("%s: %s %.3f / %.3f / %.3f s" % (
            label, what, min(v), statistics.median(v), max(v)), flush=True)
