"""Start QEMU with a test guest and talk to it: serial console, QMP, HMP.

The guest is the kit's kernel plus our busybox /init (tests/e2e/guest/init):
it prints "@@..." lines for CPU uevents and answers commands written to
its console.  Each console line is kept with the host time it arrived.
"""
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time

from qmp import QMP, HMP

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
QEMU_BUILD = os.environ.get("QEMU_BUILD", os.path.join(ROOT, "build/qemu/build"))
KIT = os.environ.get("KIT", "/var/cache/vcpu-hotplug/kit")
FW_DIRS = ["/usr/share/seabios", "/usr/share/qemu", "/usr/lib/ipxe/qemu",
           "/usr/share/qemu-efi-aarch64"]

# machine -> (binary, -M value, kernel, initrd, console, extra args)
MACHINES = {
    "pc": ("x86_64", "pc", "vmlinuz-x86-6.1", "initrd-x86.img", "ttyS0", []),
    "q35": ("x86_64", "q35", "vmlinuz-x86-6.1", "initrd-x86.img", "ttyS0", []),
    "microvm": ("x86_64", "microvm,acpi=on", "vmlinuz-x86-6.1",
                "initrd-x86.img", "ttyS0", []),
    "microvm-noacpi": ("x86_64", "microvm,acpi=off", "vmlinuz-x86-6.1",
                       "initrd-x86.img", "ttyS0", []),
    "virt": ("aarch64", "virt,gic-version=3", "Image-arm64-6.12",
             "initrd-arm64.img", "ttyAMA0",
             ["-bios", os.path.join(KIT, "QEMU_EFI.fd")]),
}
CPU_MODEL = {"x86_64": "qemu64", "aarch64": "max"}


def host_tsc_khz():
    """Under TCG the guest TSC runs at the host's rate."""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("cpu MHz"):
                return int(float(line.split(":")[1]) * 1000)
    return 0


def guest_append(machine):
    """microvm has no HPET or PM timer: under TCG on a loaded host the
    guest's PIT calibration of the TSC can fail, and Linux then stalls at
    boot ("tsc: Marking TSC unstable").  Tell it the TSC rate instead."""
    if machine.startswith("microvm") and host_tsc_khz():
        return "tsc_early_khz=%d" % host_tsc_khz()
    return ""


def cpu_driver(machine, model=None):
    arch = MACHINES[machine][0]
    model = (model or CPU_MODEL[arch]).split(",")[0]
    return "%s-%s-cpu" % (model, "x86_64" if arch == "x86_64" else "arm")


_accel_cache = {}


def pick_accel(arch):
    """KVM only if a probe guest really boots with it, else TCG."""
    want = os.environ.get("ACCEL", "auto")
    if want != "auto":
        return want
    if arch in _accel_cache:
        return _accel_cache[arch]
    accel = "tcg"
    host = os.uname().machine
    if os.access("/dev/kvm", os.R_OK | os.W_OK) and \
            {"x86_64": "x86_64", "aarch64": "aarch64"}[arch] == host:
        machine = "q35" if arch == "x86_64" else "virt"
        try:
            with VM(machine, accel="kvm", smp="1", timeout=45) as vm:
                # A guest KVM cannot run stops with "internal-error".
                # Under a working KVM this guest is ready in a few seconds.
                end = time.monotonic() + 15
                while time.monotonic() < end and accel == "tcg":
                    st = vm.qmp.cmd("query-status")["status"]
                    if st in ("internal-error", "guest-panicked",
                              "shutdown"):
                        break
                    try:
                        vm.wait_line(r"^@@READY ", 0.5)
                        accel = "kvm"
                    except GuestTimeout:
                        pass
        except Exception:
            pass
        print("accelerator probe: KVM %s; using %s" % (
            "boots a guest" if accel == "kvm" else "cannot run a guest",
            accel), flush=True)
    _accel_cache[arch] = accel
    return accel


ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;=?]*[A-Za-z]")
# A kernel message (printk goes straight to the serial port) can start in
# the middle of a line /init is writing: "@@EV 1.2 add cpu2[ 1.3] random:
# crng init done\n" and the rest of the line ("\n" here) comes after it.
# Split such a line where the kernel's timestamp starts, and join its
# start with the first line after the kernel's messages (join_cut_lines).
KMSG_AT = re.compile(r"\[ *\d+\.\d{6}\] ")          # a kernel message
KMSG_MID = re.compile(r"(?<=.)(?=%s)" % KMSG_AT.pattern)  # ...inside a line


def join_cut_lines(line, cut, hold=True):
    """One console line in; (lines out, cut): cut is the start of a line
    that kernel messages interrupted, held until its rest arrives (the
    next line that is not a kernel message).  The serial port's transmit
    buffer is FIFO, so that rest is the next thing userspace wrote.
    hold=False (firmware and early boot, before /init runs: no one
    writes lines around the kernel's then) only splits."""
    parts = KMSG_MID.split(line)
    if cut is not None and not KMSG_AT.match(parts[0]):
        parts[0], cut = cut + parts[0], None
    if hold and len(parts) > 1 and not KMSG_AT.match(parts[0]):
        cut = parts.pop(0)
    return parts, cut


class GuestTimeout(Exception):
    pass


class VM:
    def __init__(self, machine, smp="1,maxcpus=4", devices=(), extra=(),
                 append="", accel=None, kernel=None, cpu=None, mem="512M",
                 paused=False, timeout=120, name=None, machine_opts="",
                 qemu_build=None, fw_dirs=FW_DIRS, env=None):
        arch, mval, kern, initrd, console, mextra = MACHINES[machine]
        if machine_opts:
            mval += "," + machine_opts
        self.machine, self.arch = machine, arch
        self.accel = accel or pick_accel(arch)
        self.cpu = cpu or CPU_MODEL[arch]
        self.tmp = tempfile.mkdtemp(prefix="vm-%s-" % (name or machine))
        self.qmp_path = os.path.join(self.tmp, "qmp.sock")
        self.hmp_path = os.path.join(self.tmp, "hmp.sock")
        binary = os.path.join(qemu_build or QEMU_BUILD,
                              "qemu-system-" + arch)
        args = [binary, "-M", mval, "-accel", self.accel, "-cpu", self.cpu,
                "-m", mem, "-smp", smp, "-nodefaults", "-display", "none",
                "-no-reboot", "-serial", "stdio",
                "-chardev", "socket,id=qmp,path=%s,server=on,wait=off"
                % self.qmp_path, "-mon", "qmp,mode=control",
                "-chardev", "socket,id=hmp,path=%s,server=on,wait=off"
                % self.hmp_path, "-mon", "hmp,mode=readline",
                "-kernel", os.path.join(KIT, kernel or kern),
                "-initrd", os.path.join(KIT, initrd),
                "-append", "console=%s quiet panic=-1 %s %s" % (
                    console, guest_append(machine), append)]
        for d in fw_dirs:
            args += ["-L", d]
        args += mextra
        for dev in devices:
            args += ["-device", dev]
        if paused:
            args.append("-S")
        args += list(extra)
        self.args = args
        self.lines = []          # (host time, text)
        self.cond = threading.Condition()
        self.t_start = time.monotonic()
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT,
                                     env=dict(os.environ, **(env or {})))
        threading.Thread(target=self._reader, daemon=True).start()
        self._seq = 0
        try:
            self.qmp = QMP(self.qmp_path, timeout=timeout)
            self.hmp = HMP(self.hmp_path, timeout=timeout)
        except Exception:
            self.kill()
            raise RuntimeError("QEMU did not start: %s\n%s" % (
                " ".join(args), self.text()))

    # ---- console -------------------------------------------------------
    def _reader(self):
        cut, init_up = None, False
        for raw in self.proc.stdout:
            # UEFI firmware leaves terminal escapes (screen clear, cursor
            # moves) in front of the guest's first line.
            line = ANSI_ESCAPE.sub("", raw.decode(errors="replace")
                                   .rstrip("\r\n"))
            parts, cut = join_cut_lines(line, cut, init_up)
            init_up = init_up or any(p.startswith("@@READY ") for p in parts)
            with self.cond:
                for part in parts:
                    self.lines.append((time.monotonic(), part))
                self.cond.notify_all()
        with self.cond:
            if cut is not None:
                self.lines.append((time.monotonic(), cut))
            self.lines.append((time.monotonic(), "@@EXIT"))
            self.cond.notify_all()

    def mark(self):
        with self.cond:
            return len(self.lines)

    def text(self, since=0):
        with self.cond:
            return "\n".join(l for _, l in self.lines[since:])

    def wait_line(self, pattern, timeout=30, since=0):
        """Wait for a console line matching the regexp; return
        (host time, match)."""
        rx = re.compile(pattern)
        end = time.monotonic() + timeout
        i = since
        with self.cond:
            while True:
                while i < len(self.lines):
                    t, line = self.lines[i]
                    i += 1
                    m = rx.search(line)
                    if m:
                        return t, m
                    if line == "@@EXIT":
                        raise GuestTimeout("QEMU exited (rc=%s) waiting for "
                                           "%r" % (self.proc.poll(), pattern))
                left = end - time.monotonic()
                if left <= 0:
                    raise GuestTimeout("no console line %r within %ss"
                                       % (pattern, timeout))
                self.cond.wait(left)

    def wait_ready(self, timeout=120):
        t, m = self.wait_line(r"^@@READY ", timeout)
        self.boot_time = t - self.t_start
        return self.boot_time

    def guest(self, command, timeout=30):
        """Run a shell line in the guest; return its output lines."""
        self._seq += 1
        seq = self._seq
        since = self.mark()
        self.proc.stdin.write(("echo @@BEGIN %d; %s; echo @@END %d\n"
                               % (seq, command, seq)).encode())
        self.proc.stdin.flush()
        self.wait_line(r"^@@END %d$" % seq, timeout, since)
        out = self.text(since).split("\n")
        b = out.index("@@BEGIN %d" % seq)
        e = out.index("@@END %d" % seq)
        return out[b + 1:e]

    def cpus(self, timeout=30):
        """The guest's view: dict with online/present/possible/enabled as
        sets of CPU numbers and devs (registered cpuN devices)."""
        for line in self.guest("cpus", timeout):
            if line.startswith("@@CPUS "):
                view = dict(kv.split("=", 1) for kv in line.split()[1:])
                res = {k: parse_cpulist(view[k]) for k in
                       ("online", "present", "possible", "enabled")}
                res["devs"] = {int(d[3:]) for d in view["devs"].split(",")
                               if d[3:].isdigit()}
                return res
        raise GuestTimeout("guest did not answer 'cpus'")

    def pid_stats(self):
        """(RSS in KiB, thread count) of the QEMU process."""
        rss = threads = 0
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("Threads:"):
                    threads = int(line.split()[1])
        return rss, threads

    def pid_fds(self):
        """Open file descriptors of the QEMU process."""
        return len(os.listdir("/proc/%d/fd" % self.proc.pid))

    def alive(self):
        """The guest still answers on its console."""
        return any(l.startswith("@@CPUS ") for l in self.guest("cpus"))

    # ---- lifetime ------------------------------------------------------
    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def close(self):
        if self.proc.poll() is None:
            try:
                self.qmp.cmd("quit", timeout=10)
            except Exception:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def parse_cpulist(s):
    res = set()
    if s in ("", "-"):
        return res
    for part in s.split(","):
        if "-" in part:
            a, b = part.split("-")
            res.update(range(int(a), int(b) + 1))
        else:
            res.add(int(part))
    return res
