"""Released machine types keep stock QEMU 10.0's guest ABI and migration
stream.  For each machine type, with free CPU slots (-smp 1,maxcpus=4) and
without (-smp 2), the same command line runs on stock 10.0 (the Debian
base without our series, built by scripts/build-stock.sh into
build/qemu-stock/build; STOCK_BUILD overrides) and on ours:
- tables: the guest's ACPI tables (/sys/firmware/acpi/tables) are byte for
  byte the same;
- stock-to-ours, ours-to-stock: a running guest migrates (unix socket,
  -incoming defer) and answers on the destination with the same CPUs."""
import os
import re

from harness import Skip
from test_migration import migrate
from vm import VM, ROOT, QEMU_BUILD, MACHINES

STOCK_BUILD = os.environ.get("STOCK_BUILD",
                             os.path.join(ROOT, "build/qemu-stock/build"))
# released machine type -> our vm.MACHINES entry (its -M options, firmware)
TYPES = {"pc-i440fx-10.0": "pc", "pc-q35-10.0": "q35", "virt-10.0": "virt"}
SMPS = {"smp1-maxcpus4": "1,maxcpus=4", "smp2": "2"}
HEX = re.compile(r"^( [0-9a-f]{2})+$")


def binary(build, m):
    return os.path.relpath(os.path.join(build, "qemu-system-" +
                                        MACHINES[m][0]), ROOT)


def tables(vm):
    """{name: bytes} of the tables the guest's kernel shows."""
    out = vm.guest("cd /sys/firmware/acpi/tables; for t in *; do "
                   "[ -f $t ] && echo @@TABLE $t && od -An -v -tx1 $t; "
                   "done; cd /", timeout=120)
    res, name = {}, None
    for line in out:
        if line.startswith("@@TABLE "):
            name = line.split()[1]
            res[name] = bytearray()
        elif name and HEX.match(line):       # not a kernel message
            res[name] += bytes(int(x, 16) for x in line.split())
    return res


def diff(name, a, b):
    """Where table name differs: sizes, first differing offset, 16 bytes."""
    off = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y),
               min(len(a), len(b)))
    return "%s: %d bytes on stock, %d on ours, %d differ; at 0x%x\n" \
        "  stock %s\n  ours  %s" % (
            name, len(a), len(b),
            sum(x != y for x, y in zip(a, b)) + abs(len(a) - len(b)), off,
            a[off:off + 16].hex(" "), b[off:off + 16].hex(" "))


def scenario(mt, tag, smp):
    m = TYPES[mt]
    name = "compat/%s/%s" % (mt, tag)
    cases = [name + "-" + c for c in ("tables", "stock-to-ours",
                                      "ours-to-stock")]

    def vm(build, *extra):
        return VM(m, smp=smp, qemu_build=build, extra=["-M", mt] + list(
            extra), name="%s-%s" % (m, "stock" if build else "ours"))

    def run(r):
        if not os.path.exists(os.path.join(ROOT, binary(STOCK_BUILD, m))):
            for c in cases:
                with r.case(c):
                    raise Skip("no stock QEMU in %s (make stock)"
                               % STOCK_BUILD)
            return
        print("%s: stock %s, ours %s" % (name, binary(STOCK_BUILD, m),
                                         binary(QEMU_BUILD, m)), flush=True)
        with vm(STOCK_BUILD) as stock, vm(None) as ours:
            with r.case(cases[0], ours):
                stock.wait_ready()
                ours.wait_ready()
                want, got = tables(stock), tables(ours)
                for t in ("DSDT", "APIC", "FACP"):
                    assert t in want, "stock guest has no %s: %s" % (
                        t, sorted(want))
                bad = ["only on %s: %s" % (w, t) for w, a, b in (
                    ("stock", want, got), ("ours", got, want))
                    for t in sorted(set(a) - set(b))]
                bad += [diff(t, want[t], got[t]) for t in sorted(want)
                        if t in got and want[t] != got[t]]
                assert not bad, "ACPI tables differ from stock (%s " \
                    "compared):\n%s" % (" ".join(sorted(want)),
                                        "\n".join(bad))
                print("%s: %s identical" % (cases[0], " ".join(sorted(want))),
                      flush=True)
            for case, src, build in ((cases[1], stock, None),
                                     (cases[2], ours, STOCK_BUILD)):
                with vm(build, "-incoming", "defer") as dst, \
                        r.case(case, dst):
                    print("%s: %s -> %s" % (case, *(os.path.relpath(
                        v.args[0], ROOT) for v in (src, dst))), flush=True)
                    before = src.cpus()
                    migrate(src, dst)
                    after = dst.cpus()
                    for k in ("online", "present", "possible"):
                        assert after[k] == before[k], "guest %s %s after " \
                            "migration, %s before" % (k, after[k], before[k])
    return run


def scenarios():
    return [("compat/%s/%s" % (mt, tag), scenario(mt, tag, smp))
            for mt in TYPES for tag, smp in SMPS.items()]
