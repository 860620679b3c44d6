"""libvirt end to end: `virsh setvcpus --live` on a transient domain that
runs our QEMU, as a management layer does it.  libvirt 11.3 (installed by
scripts/setup-host.sh) plugs with query-hotpluggable-cpus + device_add
(ids vcpuN) and unplugs with device_del, failing the unplug when no
DEVICE_DELETED arrives within 5 s.  The guest is the kit's, its console a
unix socket that the test reads and writes like vm.VM's stdio."""
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time

from harness import Skip
from vm import VM, KIT, QEMU_BUILD

URI = "qemu:///system"
AAVMF = "/usr/share/AAVMF"

# machine -> (arch, kernel, initrd, console, machine type libvirt must
# report, extra <os> XML, <features>, <cpu>)
DOMAINS = {
    "q35": ("x86_64", "vmlinuz-x86-6.1", "initrd-x86.img", "ttyS0",
            "pc-q35-10.0-cpuhp1", "", "<acpi/>", ""),
    "virt": ("aarch64", "Image-arm64-6.12", "initrd-arm64.img", "ttyAMA0",
             "virt-10.0-cpuhp1",
             "<loader readonly='yes' type='pflash'>%s/AAVMF_CODE.fd</loader>"
             "<nvram template='%s/AAVMF_VARS.fd'>{tmp}/vars.fd</nvram>"
             % (AAVMF, AAVMF), "<acpi/><gic version='3'/>",
             "<cpu mode='custom' match='exact'>"
             "<model fallback='forbid'>max</model></cpu>"),
}
XML = """<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>512</memory>
  <vcpu placement='static' current='1'>4</vcpu>
  <vcpus>
    <vcpu id='0' enabled='yes' hotpluggable='no'/>
    <vcpu id='1' enabled='no' hotpluggable='yes'/>
    <vcpu id='2' enabled='no' hotpluggable='yes'/>
    <vcpu id='3' enabled='no' hotpluggable='yes'/>
  </vcpus>
  <os>
    <type arch='{arch}' machine='{machine}'>hvm</type>
    {os_extra}
    <kernel>{kit}/{kernel}</kernel>
    <initrd>{kit}/{initrd}</initrd>
    <cmdline>console={console} quiet panic=-1</cmdline>
  </os>
  <features>{features}</features>
  {cpu}
  <on_reboot>destroy</on_reboot>
  <devices>
    <emulator>{emulator}</emulator>
    <serial type='unix'>
      <source mode='bind' path='{tmp}/console.sock'/>
      <target port='0'/>
    </serial>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
"""


def virsh(*args, timeout=120):
    """(rc, stdout, stderr, seconds)"""
    t0 = time.monotonic()
    p = subprocess.run(["virsh", "-c", URI] + list(args), text=True,
                       capture_output=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr.strip(), time.monotonic() - t0


def ok(*args):
    rc, out, err, _ = virsh(*args)
    assert rc == 0, "virsh %s: rc %d: %s" % (" ".join(args), rc, err)
    return out


def _listening(path):
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


_start_lock = threading.Lock()


def ensure_daemons():
    """Start virtlogd and libvirtd (no systemd here) unless they run."""
    if not (shutil.which("virsh") and shutil.which("libvirtd")):
        raise Skip("libvirt is not installed (scripts/setup-host.sh "
                   "installs it)")
    with _start_lock:
        for daemon, sock in (("virtlogd", "/run/libvirt/virtlogd-sock"),
                             ("libvirtd", "/run/libvirt/libvirt-sock")):
            if _listening(sock):
                continue
            p = subprocess.run([daemon, "-d"], text=True,
                               capture_output=True)
            end = time.monotonic() + 30
            while not _listening(sock):
                assert time.monotonic() < end, \
                    "%s -d: rc %d %s; %s not listening" % (
                        daemon, p.returncode, p.stderr.strip(), sock)
                time.sleep(0.2)


class _Console:
    """What VM expects of its QEMU process: stdin/stdout (the guest's
    serial console) and poll()/pid (the domain's QEMU)."""
    def __init__(self, sock, pid):
        self.sock, self.pid = sock, pid
        self.stdin = sock.makefile("wb")
        self.stdout = sock.makefile("rb")

    def poll(self):
        return None if os.path.exists("/proc/%d" % self.pid) else "gone"


class Domain(VM):
    """A transient libvirt domain with the kit's guest; the console
    methods (wait_line, guest, cpus, ...) are VM's."""
    def __init__(self, machine):
        arch, kern, initrd, cons, mtype, os_extra, feat, cpu = \
            DOMAINS[machine]
        self.machine, self.arch, self.accel = machine, arch, "tcg"
        self.mtype = mtype
        self.name = "e2e-vcpuhp-%s-%d" % (machine, os.getpid())
        self.tmp = tempfile.mkdtemp(prefix="libvirt-%s-" % machine)
        self.emulator = os.path.join(QEMU_BUILD, "qemu-system-" + arch)
        xml = XML.format(name=self.name, arch=arch, kit=KIT, kernel=kern,
                         machine=machine,
                         initrd=initrd, console=cons, features=feat,
                         os_extra=os_extra.format(tmp=self.tmp), cpu=cpu,
                         emulator=self.emulator, tmp=self.tmp)
        path = os.path.join(self.tmp, "domain.xml")
        with open(path, "w") as f:
            f.write(xml)
        self.lines, self.cond, self._seq = [], threading.Condition(), 0
        self.proc = None
        self.t_start = time.monotonic()
        rc, _, err, _ = virsh("create", path, "--paused")
        if rc:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise AssertionError("virsh create: %s" % err)
        try:
            with open("/run/libvirt/qemu/%s.pid" % self.name) as f:
                pid = int(f.read())
            s = socket.socket(socket.AF_UNIX)
            s.connect(os.path.join(self.tmp, "console.sock"))
            self.proc = _Console(s, pid)
            threading.Thread(target=self._reader, daemon=True).start()
            ok("resume", self.name)
        except BaseException:
            self.close()
            raise

    def qmp(self, cmd, **args):
        """A QMP command through libvirt; its "return"."""
        req = {"execute": cmd}
        if args:
            req["arguments"] = args
        out = ok("qemu-monitor-command", self.name, "--pretty",
                 json.dumps(req))
        return json.loads(out)["return"]

    def vcpucount(self):
        """{"maximum live": n, "current live": n}"""
        res = {}
        for line in ok("vcpucount", self.name).splitlines():
            w = line.split()
            if len(w) == 3:
                res[w[0] + " " + w[1]] = int(w[2])
        return res

    def vcpuinfo(self):
        """{vcpu: {"State": ..., ...}}; fails when virsh does."""
        res, cur = {}, None
        for line in ok("vcpuinfo", self.name).splitlines():
            k, _, v = line.partition(":")
            if k.strip() == "VCPU":
                cur = int(v)
                res[cur] = {}
            elif cur is not None and k.strip():
                res[cur][k.strip()] = v.strip()
        return res

    def enabled_in_xml(self):
        xml = ok("dumpxml", self.name)
        return {int(i) for i in re.findall(
            r"<vcpu id='(\d+)' enabled='yes'", xml)}

    def threads(self):
        return set(int(t) for t in os.listdir("/proc/%d/task"
                                              % self.proc.pid))

    def close(self):
        virsh("destroy", self.name)
        if self.proc is not None:
            self.proc.sock.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def wait_events(vm, action, n, since, timeout=60):
    """Wait until the guest reported `action` for n CPUs; return the set
    of CPUs and the host time of the last report."""
    rx = re.compile(r"^@@EV \S+ %s cpu(\d+)$" % action)
    end = time.monotonic() + timeout
    while True:
        with vm.cond:
            hits = [(t, int(m.group(1))) for t, line in vm.lines[since:]
                    for m in [rx.match(line)] if m]
        if len({c for _, c in hits}) >= n:
            return {c for _, c in hits}, hits[-1][0]
        assert time.monotonic() < end, \
            "guest reported %r for %s within %ss, expected %d CPUs" % (
                action, sorted(c for _, c in hits), timeout, n)
        time.sleep(0.05)


def guest_events(vm, cpu, since):
    return [line.split()[2] for line in vm.text(since).split("\n")
            if line.startswith("@@EV ") and line.endswith(" cpu%d" % cpu)
            and line.split()[2] in ("add", "online", "offline", "remove")]


def check_state(vm, n, guest_cpus):
    """libvirt, QEMU and the guest agree that n vCPUs are there."""
    assert vm.vcpucount() == {"maximum live": 4, "current live": n}, \
        vm.vcpucount()
    info = vm.vcpuinfo()
    assert sorted(info) == list(range(n)), info
    assert all(v["State"] == "running" for v in info.values()), info
    assert vm.enabled_in_xml() == set(range(n)), vm.enabled_in_xml()
    slots = vm.qmp("query-hotpluggable-cpus")
    assert len(slots) == 4, slots
    paths = {s["qom-path"] for s in slots if "qom-path" in s}
    plugged = {p for p in paths if p.startswith("/machine/peripheral/")}
    assert plugged == {"/machine/peripheral/vcpu%d" % i
                       for i in range(1, n)}, paths
    assert len(paths) == n, paths
    cpus = vm.qmp("query-cpus-fast")
    assert {c["qom-path"] for c in cpus} == paths, cpus
    tids = {c["thread-id"] for c in cpus}
    assert tids <= vm.threads(), "vCPU threads %s not all in QEMU %s" % (
        tids, vm.threads())
    view = vm.cpus()
    assert view["online"] == guest_cpus, view
    return tids


def setvcpus(vm, n):
    rc, _, err, secs = virsh("setvcpus", vm.name, str(n), "--live")
    assert rc == 0, "virsh setvcpus %d --live: rc %d after %.1fs: %s" % (
        n, rc, secs, err)
    return secs


def flow(m):
    def scenario(r):
        ready = False
        with r.case("libvirt/%s-domcapabilities" % m):
            ensure_daemons()
            arch = DOMAINS[m][0]
            emu = os.path.join(QEMU_BUILD, "qemu-system-" + arch)
            caps = ok("domcapabilities", "--emulatorbin", emu, "--arch",
                      arch, "--machine", m, "--virttype", "qemu")
            assert "<path>%s</path>" % emu in caps, caps[:300]
            assert "<machine>%s</machine>" % DOMAINS[m][4] in caps, \
                caps[:300]
            ready = True
        if not ready:
            return
        vm, booted = None, False
        try:
            with r.case("libvirt/%s-boot" % m):
                vm = Domain(m)
                vm.wait_ready()
                xml = ok("dumpxml", vm.name)
                assert "machine='%s'" % DOMAINS[m][4] in xml, xml[:400]
                boot_tids = check_state(vm, 1, {0})
                assert vm.cpus()["possible"] == {0, 1, 2, 3}
                print("libvirt %s: %s accel=tcg boot=%.1fs" % (
                    m, vm.name, vm.boot_time), flush=True)
                booted = True
            if booted:
                steps(r, m, vm, boot_tids)
        finally:
            if vm is not None:
                vm.close()
    return scenario


def steps(r, m, vm, boot_tids):
    def up(n_from, n_to):
        since = vm.mark()
        t0 = time.monotonic()
        secs = setvcpus(vm, n_to)
        new, t_on = wait_events(vm, "online", n_to - n_from, since)
        assert new == set(range(n_from, n_to)), new
        check_state(vm, n_to, set(range(n_to)))
        for c in new:
            assert guest_events(vm, c, since) == ["add", "online"]
            w = vm.guest("work %d" % c)
            assert "@@WORK %d ran-on=%d" % (c, c) in w, w
        return secs, t_on - t0

    def down(n_from):
        since = vm.mark()
        t0 = time.monotonic()
        before = vm.threads()
        secs = setvcpus(vm, 1)
        gone, t_rm = wait_events(vm, "remove", n_from - 1, since)
        assert gone == set(range(1, n_from)), gone
        for c in gone:
            ev = guest_events(vm, c, since)
            assert ev == ["offline", "remove"], (c, ev)
        tids = check_state(vm, 1, {0})
        assert tids == boot_tids, (tids, boot_tids)
        assert len(before - vm.threads()) >= n_from - 1, \
            "QEMU threads %s, before %s" % (vm.threads(), before)
        assert vm.cpus()["devs"] == {0}
        return secs, t_rm - t0

    def report(what, secs, guest):
        print("libvirt %s: setvcpus %s --live %.2fs, guest %s" % (
            m, what, secs, guest), flush=True)

    with r.case("libvirt/%s-setvcpus-up" % m, vm):
        secs, g = up(1, 3)
        report("3", secs, "had both CPUs online after %.2fs" % g)
    down_ok = False
    with r.case("libvirt/%s-setvcpus-down" % m, vm):
        secs, g = down(3)
        report("1", secs, "had removed both after %.2fs" % g)
        down_ok = True
    with r.case("libvirt/%s-replug-same-ids" % m, vm):
        if not down_ok:
            raise Skip("needs the vCPUs of setvcpus-up unplugged")
        secs, g = up(1, 4)
        report("4", secs, "had three CPUs online after %.2fs" % g)
        secs, g = down(4)
        report("1", secs, "had removed three after %.2fs" % g)


def scenarios():
    return [("libvirt/q35", flow("q35")), ("libvirt/virt", flow("virt"))]
