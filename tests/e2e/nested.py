"""Real KVM for x86 and arm64 scenarios, nested
(/work/shared/docs/nested-kvm.md).

This host's /dev/kvm cannot run Linux, so an L1 Linux guest boots under
TCG with the CPU's virtualization extensions and runs our QEMU with
-accel kvm for each L2 test guest: on x86 with AMD SVM+NPT (-cpu max) and
kvm-amd, L1 from scripts/kvm-l1-kit.sh; on arm64 with EL2
(virt,virtualization=on, -cpu max) and the kernel's built-in KVM, L1 from
scripts/kvm-l1-kit-arm64.sh with an arm64 build of our QEMU.  L1's /init
is tests/e2e/guest/l1-init for both.

Each arch's L1 is booted once, on first use, and runs one L2 at a time:
L2's console, QMP and HMP are ttys in L1 (L1_ARCH says which), each a
unix socket on this host.  NestedVM is a vm.VM for such an L2, so the
steps in hotplug.py and the scenarios in test_x86.py drive it unchanged.
"""
import atexit
import os
import shlex
import shutil
import socket
import subprocess
import tempfile
import threading
import time

from qmp import QMP, HMP
from vm import VM, MACHINES, CPU_MODEL, KIT, GuestTimeout, guest_append

L1_BOOT_TIMEOUT = 240    # measured 10-20 s; generous for a loaded host
L2_TIMEOUT = 120         # L2 QEMU start up to its QMP greeting
PORTS = ("con", "qmp", "hmp")   # L2's console, QMP, HMP: L1_ARCH's ttys
# l1-init's fresh copy of OVMF_VARS_4M.fd for each L2 (test_ovmf.py)
OVMF_VARS = "/tmp/ovmf-vars.fd"
# A scenario group waits at most this long for the previous L2 to go.
L2_LOCK_TIMEOUT = 1800

# The L2 machines are vm.MACHINES keys "kvm/<machine>": scenarios made by
# test_x86 and test_unplug name their cases after the machine key, so
# they come out as kvm/<machine>/<case>.
for _m in ("pc", "q35", "microvm", "virt"):
    MACHINES["kvm/" + _m] = MACHINES[_m]
# The arm64 L1: EL2 for KVM; device-tree boot (no UEFI: L1 needs no ACPI
# and boots faster, entered at EL2 by QEMU's own boot code).
MACHINES["kvm-l1/virt"] = ("aarch64", "virt,gic-version=3,virtualization=on",
                           "Image-arm64-6.12", "initrd-arm64.img", "ttyAMA0",
                           [])

# Per L1 architecture: its kit (and the script that builds it), how it
# boots under TCG, the device that carries each host socket (PORTS) into
# L1, and the tty in L1 that L2's QEMU opens for it.  x86 has ISA serial
# ports; arm virt has one PL011, so virtio-serial consoles (hvc).
L1_ARCH = {
    "x86_64": {
        "kit": "initrd-l1.img", "script": "scripts/kvm-l1-kit.sh",
        "machine": "q35", "kernel": "vmlinuz-x86-6.1", "cpu": "max",
        "bus": [], "port": "isa-serial,chardev=%(id)s,index=%(i)d",
        "ttys": ("/dev/ttyS1", "/dev/ttyS2", "/dev/ttyS3"),
    },
    "aarch64": {
        "kit": "initrd-l1-arm64.img", "script": "scripts/kvm-l1-kit-arm64.sh",
        # pauth-impdef: TCG's QARMA pointer authentication is slow
        "machine": "kvm-l1/virt", "kernel": None,
        "cpu": "max,pauth-impdef=on",
        # virtio-pci, virtio_console: built into Debian's arm64 kernel
        "bus": ["-device", "virtio-serial-pci"],
        "port": "virtconsole,chardev=%(id)s",
        "ttys": ("/dev/hvc0", "/dev/hvc1", "/dev/hvc2"),
    },
}


class L1:
    """The TCG guest that runs KVM: a vm.VM whose /init takes commands."""

    def __init__(self, arch):
        conf = L1_ARCH[arch]
        initrd = os.path.join(KIT, conf["kit"])
        if not os.path.exists(initrd):
            raise RuntimeError("no L1 kit %s: run sh %s"
                               % (initrd, conf["script"]))
        self.arch = arch
        self.ttys = dict(zip(PORTS, conf["ttys"]))
        self.tmp = tempfile.mkdtemp(prefix="kvm-l1-ports-")
        self.sock = {p: os.path.join(self.tmp, p) for p in PORTS}
        extra = list(conf["bus"])
        for i, port in enumerate(PORTS, 1):
            extra += ["-chardev", "socket,id=l2%s,path=%s,server=on,wait=off"
                      % (port, self.sock[port]),
                      "-device", conf["port"] % {"id": "l2" + port, "i": i}]
        # vm.VM's -initrd is the test guest's; the later one wins.
        self.vm = VM(conf["machine"], smp="1", accel="tcg", cpu=conf["cpu"],
                     mem="2048M", kernel=conf["kernel"], name="kvm-l1",
                     extra=extra + ["-initrd", initrd])
        nice = int(os.environ.get("E2E_L1_NICE", "0"))
        if nice:
            for tid in os.listdir("/proc/%d/task" % self.vm.proc.pid):
                os.setpriority(os.PRIO_PROCESS, int(tid), nice)
        try:
            t, m = self.vm.wait_line(r"^@@L1READY (.*)$", L1_BOOT_TIMEOUT)
        except GuestTimeout as e:
            tail = "\n  ".join(self.vm.text().split("\n")[-8:])
            self.vm.close()
            raise RuntimeError("L1 did not boot: %s; last output:\n  %s"
                               % (e, tail))
        self.boot_time = t - self.vm.t_start
        print("kvm: L1 (TCG, -cpu %s, %s) ready in %.1fs: %s" % (
            conf["cpu"], os.path.basename(initrd), self.boot_time,
            m.group(1)), flush=True)
        if m.group(1) != "kvm":
            self.vm.close()
            raise RuntimeError("KVM did not come up in L1: " + m.group(1))
        # What KVM in L1 is (VHE or not, vGIC, SVM/NPT): for the log.
        info = self.vm.guest("uname -r; dmesg | grep -iE 'kvm|svm' | "
                             "cut -c16- | head -n 12")
        print("kvm: L1 kernel %s:\n  %s" % (
            info[0] if info else "?", "\n  ".join(info[1:])), flush=True)

    def connected(self, want, timeout=30):
        """Wait until L1's QEMU has (want=True) or has dropped (False) a
        host client on each L2 port: a byte L2 sends while nobody is
        connected is lost, and so would be its QMP greeting."""
        end = time.monotonic() + timeout
        while True:
            chars = {c["label"]: c["filename"] for c in
                     self.vm.qmp.cmd("query-chardev")}
            if all(chars["l2" + p].startswith("disconnected:") != want
                   for p in PORTS):
                return
            if time.monotonic() > end:
                raise TimeoutError("L1 ports %s: want connected=%s" %
                                   (chars, want))
            time.sleep(0.02)

    def start(self, args):
        """Start an L2 QEMU; return (its pid in L1, L1 console mark)."""
        since = self.vm.mark()
        self.vm.guest("start " + shlex.join(args))
        _, m = self.vm.wait_line(r"^@@L2PID (\d+)$", 30, since)
        return int(m.group(1)), since

    def close(self):
        self.vm.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


_l1 = {}                         # arch -> its L1
_l1_error = {}                   # arch -> why its L1 did not come up
_l1_lock = threading.Lock()      # boot each L1 once
_l2_lock = {a: threading.Lock() for a in L1_ARCH}   # one L2 per L1


def l1(arch):
    """The arch's L1, booted on first use.  A failed boot is remembered
    and raised again: every KVM scenario of the arch then fails with the
    same reason."""
    with _l1_lock:
        if arch not in _l1 and arch not in _l1_error:
            try:
                _l1[arch] = L1(arch)
                atexit.register(_l1[arch].close)
            except Exception as e:
                _l1_error[arch] = "%s: %s" % (type(e).__name__, e)
        if arch in _l1_error:
            raise RuntimeError("no nested KVM: " + _l1_error[arch])
        return _l1[arch]


class _L2Proc:
    """The part of subprocess.Popen that vm.VM and the harness use, for a
    QEMU inside L1: stdin/stdout are L2's console (its port in L1)."""

    def __init__(self, l1vm, con, pid):
        self.l1vm, self.con, self.pid = l1vm, con, pid
        self.stdin = con.makefile("wb")
        self.stdout = con.makefile("rb")
        self.returncode = None
        self.exited = threading.Event()

    def poll(self):
        return self.returncode

    def wait(self, timeout=None):
        if not self.exited.wait(timeout):
            raise subprocess.TimeoutExpired("L2 QEMU", timeout)
        return self.returncode

    def kill(self):
        if self.returncode is None:
            self.l1vm.guest("kill -9 %d" % self.pid)


def _client(cls, path, timeout):
    """Construct a QMP or HMP client in a thread: its constructor waits for
    L2's greeting, which comes only after L2 is started, once the host is
    connected.  Returns (thread, box): box["obj"] is set as soon as the
    object exists (its socket, to hang up), box["err"] on failure."""
    box = {}

    def run():
        obj = box["obj"] = cls.__new__(cls)
        try:
            cls.__init__(obj, path, timeout)
        except Exception as e:
            box["err"] = e
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, box


def _hang_up(sock):
    # shutdown() first: a plain close() leaves L1's chardev attached to
    # the old client, and the next L2's greeting would go nowhere.
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


class NestedVM(VM):
    """An L2 guest under KVM in L1, driven like vm.VM (console lines, QMP,
    HMP).  machine: "kvm/<machine>" (or a plain vm.MACHINES key); it picks
    the L1 arch.  cpu: "host" or a model (default as vm.VM's)."""
    # The latest L2 of each L1 arch, for test_kvm's failure report: the
    # x86 and arm64 groups run side by side.
    last = {}

    def __init__(self, machine, smp="1,maxcpus=4", devices=(), extra=(),
                 append="", cpu=None, mem="512M", paused=False,
                 timeout=L2_TIMEOUT, name=None, machine_opts="", accel=None,
                 kernel=None):
        arch, mval, kern, _, console, mextra = MACHINES[machine]
        assert kernel in (None, kern) and accel in (None, "kvm"), \
            (kernel, accel)
        cpu = cpu or CPU_MODEL[arch]
        self.machine, self.arch, self.accel, self.cpu = \
            machine, arch, "kvm", cpu
        self.lines, self.cond, self._seq = [], threading.Condition(), 0
        self.qmp = self.hmp = self.proc = None
        self.l1 = l1(arch)
        self.l2_lock = _l2_lock[arch]
        NestedVM.last[arch] = self
        if not self.l2_lock.acquire(timeout=L2_LOCK_TIMEOUT):
            raise TimeoutError("L1 busy for %ss" % L2_LOCK_TIMEOUT)
        self.locked = True
        clients = []
        try:
            con = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            con.connect(self.l1.sock["con"])
            self._con = con
            clients = [_client(QMP, self.l1.sock["qmp"], timeout),
                       _client(HMP, self.l1.sock["hmp"], timeout)]
            self.l1.connected(True)
            mval += "," + machine_opts if machine_opts else ""
            tty = self.l1.ttys
            args = (["-M", mval, "-accel", "kvm", "-cpu", cpu, "-m", mem,
                     "-smp", smp] + shlex.split(
                "-nodefaults -display none -no-reboot "
                "-chardev serial,id=con,path=%s -serial chardev:con "
                "-chardev serial,id=qmp,path=%s "
                "-mon chardev=qmp,mode=control "
                "-chardev serial,id=hmp,path=%s "
                "-mon chardev=hmp,mode=readline "
                "-kernel /kit/vmlinuz -initrd /kit/initrd"
                % (tty["con"], tty["qmp"], tty["hmp"])) +
                # the machine's firmware (-bios): the kit has it in /fw,
                # which l1-init passes as -L
                [os.path.basename(a) if a.startswith("/") else a
                 for a in mextra] +
                ["-append", "console=%s quiet panic=-1 %s %s" % (
                    console, guest_append(machine.split("/")[-1]), append)])
            for dev in devices:
                args += ["-device", dev]
            args += (["-S"] if paused else []) + list(extra)
            self.args = args
            self.t_start = time.monotonic()
            pid, since = self.l1.start(args)
            self.proc = _L2Proc(self.l1.vm, con, pid)
            threading.Thread(target=self._reader, daemon=True).start()
            threading.Thread(target=self._watch, args=(since,),
                             daemon=True).start()
            end = time.monotonic() + timeout
            for (t, box), what in zip(clients, ("qmp", "hmp")):
                # not the whole timeout if L2 QEMU exits at once
                while t.is_alive() and not self.proc.exited.is_set() and \
                        time.monotonic() < end:
                    t.join(0.1)
                if "err" in box or t.is_alive():
                    raise RuntimeError(
                        "L2 QEMU did not start (no %s: %s): %s\n%s" % (
                            what, box.get("err"), " ".join(args),
                            self.text()))
                setattr(self, what, box["obj"])
            kvm = self.qmp.cmd("query-kvm")
            print("kvm: %s %s: L2 query-kvm %s" % (machine, cpu, kvm),
                  flush=True)
            assert kvm == {"enabled": True, "present": True}, \
                "L2 is not running under KVM: query-kvm %s" % kvm
        except BaseException:
            for t, box in clients:
                if "obj" in box:
                    _hang_up(getattr(box["obj"], "sock", None))
            self.close()
            raise

    def _watch(self, since):
        """L1 reports L2 QEMU's exit: record it, keep QEMU's own messages
        (on L1's console) with L2's lines, and end L2's console so that
        wait_line stops waiting."""
        try:
            # bounded by L1's life: its end raises GuestTimeout
            _, m = self.l1.vm.wait_line(r"^@@L2EXIT (\d+)$", 24 * 3600,
                                        since)
            rc = int(m.group(1))
        except GuestTimeout:
            rc = -1                        # L1 itself is gone
        time.sleep(0.2)                    # L2's last console bytes
        stderr = [l for l in self.l1.vm.text(since).split("\n")
                  if l and not l.startswith("@@")]
        with self.cond:
            self.lines += [(time.monotonic(), "L2 QEMU: " + l)
                           for l in stderr]
        self.proc.returncode = rc
        self.proc.exited.set()
        _hang_up(self._con)

    def _stats(self):
        for line in self.l1.vm.guest("stats %d" % self.proc.pid):
            if line.startswith("@@L2STATS "):
                return [int(x) for x in line.split()[1:4]]
        raise GuestTimeout("L1 did not answer 'stats'")

    def pid_stats(self):
        """(RSS in KiB, thread count) of L2's QEMU, read in L1."""
        return tuple(self._stats()[:2])

    def pid_fds(self):
        """Open file descriptors of L2's QEMU, read in L1."""
        return self._stats()[2]

    def close(self):
        try:
            if self.proc is not None and self.proc.poll() is None:
                try:
                    self.qmp.cmd("quit", timeout=10)
                    self.proc.wait(15)
                except Exception:
                    self.proc.kill()
                    self.proc.wait(15)
            for c in (self.qmp, self.hmp):
                if c is not None:
                    _hang_up(c.sock)
            _hang_up(getattr(self, "_con", None))
            if getattr(self, "locked", False):
                self.l1.connected(False)
        finally:
            if getattr(self, "locked", False):
                self.locked = False
                self.l2_lock.release()
