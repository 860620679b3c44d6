#!/usr/bin/env python3
"""Sum up the ASan/LSan reports of one `make asan` run.

usage: asan_report.py RUNDIR

RUNDIR holds `procs` (one "pid args" line per QEMU started, written by the
wrappers of scripts/asan.sh) and asan.<pid> (ASAN_OPTIONS log_path; with
atexit=1 every process that reached exit() writes its exit stats there).
Reports are grouped by their first three frames below the allocator or
interceptor; a group is "hotplug" when any frame of any of its stacks lies
on the CPU hot-plug/unplug paths (HOTPLUG below).  Exit status 1 if any
report is in a hotplug path, else 0.
"""
import collections
import glob
import os
import re
import sys

# (file part, function regexp or None, max frame depth or None)
HOTPLUG = [
    ("hw/acpi/cpu.c", None, None),
    ("hw/acpi/generic_event_device.c", None, None),
    ("hw/i386/x86-common.c", r"cpu", None),
    ("hw/i386/microvm.c", None, None),
    ("hw/arm/virt.c", r"cpu", None),
    ("hw/intc/arm_gicv3", None, None),
    ("target/i386/cpu.c", r"realize|unrealize|finalize", None),
    ("target/arm/cpu.c", r"realize|unrealize|finalize", None),
    ("target/arm/cpu64.c", r"realize|unrealize|finalize", None),
    # x86 TCG CPU realize/unrealize, incl. its machine-done SMRAM hook
    ("target/i386/tcg/system/tcg-cpu.c", None, None),
    ("accel/accel-target.c", r"^accel_cpu_common_(un)?realize", None),
    ("tcg/tcg.c", r"^tcg_register_thread", None),
    ("accel/tcg/", r"^tcg_(exec_)?(un)?realize|^tcg_cpu_|start_vcpu_thread",
     None),
    # a vCPU thread's own allocations, not those of guest MMIO it runs
    ("accel/tcg/", r"^(rr|mttcg)_cpu_thread_fn", 3),
    ("", r"^cpu_address_space_", None),
    # data of async_run_on_cpu() work: freed by the work function, so it
    # leaks only when the target vCPU is unplugged before running it
    ("accel/tcg/cputlb.c", r"_all_cpus(_synced)?$", None),
    ("cpu-common.c", r"^(async_|async_safe_)?run_on_cpu|queued_cpu_work",
     None),
    ("system/cpus.c", None, None),
    ("hw/core/cpu-common.c", None, None),
    ("cpu-target.c", r"^cpu_exec_(un)?realizefn|^cpu_list_", None),
    ("cpu-common.c", r"^cpu_list_", None),
    ("", r"^(qdev_unplug|qmp_device_del|hmp_device_del|qdev_unrealize|"
     r"hotplug_handler_|qdev_simple_device_unplug_cb)", None),
    ("", r"^(memory_region_finalize|memory_region_unref|address_space_destroy|"
     r"do_address_space_destroy|address_space_unregister|flatview_destroy|"
     r"flatview_unref|memory_region_del_subregion)", None),
]
HOTPLUG_C = [(f, re.compile(r) if r else None, d) for f, r, d in HOTPLUG]

# frames skipped when naming a group: allocators, interceptors, glib/QOM
# wrappers that say nothing about who allocated
SKIP = re.compile(r"^(__interceptor_|__asan_|__lsan_|__sanitizer|malloc$|"
                  r"calloc$|realloc$|free$|operator |g_malloc|g_malloc0|"
                  r"g_realloc|g_try_|g_new|g_slice_|g_memdup|g_strdup|"
                  r"g_strndup|g_strconcat|g_string_|g_array_|g_ptr_array_|"
                  r"g_hash_table_|g_list_|g_slist_|object_new|object_new_"
                  r"with_type|type_new|strdup$|__strdup$)")
FRAME = re.compile(r"^\s*#(\d+) 0x[0-9a-f]+ in (\S+)(?: (\S+))?")
LEAK = re.compile(r"^(Direct|Indirect) leak of (\d+) byte\(s\) in (\d+) "
                  r"object\(s\)")
ERROR = re.compile(r"^==\d+==ERROR: AddressSanitizer: (\S+)")


def parse(path):
    """Yield (kind, detail, bytes, objects, stacks) per report in a file;
    kind is 'error' or 'leak'; stacks is a list of [(func, file)]."""
    cur = None
    stack = None
    header = ""
    with open(path, errors="replace") as f:
        for line in f:
            if not FRAME.match(line) and line.strip():
                header = line
            m = LEAK.match(line)
            e = ERROR.match(line)
            if m or e or line.startswith("SUMMARY:") or \
                    "LeakSanitizer: detected" in line:
                if cur:
                    yield cur
                cur = None
            if m:
                stack = []
                cur = ("leak", m.group(1).lower(), int(m.group(2)),
                       int(m.group(3)), [stack])
                continue
            if e:
                stack = []
                cur = ("error", e.group(1), 0, 0, [stack])
                continue
            fm = FRAME.match(line)
            if fm and cur:
                if fm.group(1) == "0" and stack:  # freed-by / allocated-by
                    stack = []
                    # "Thread T2 created by T0 here:" says nothing
                    # about the bad access
                    if "created by" not in header:
                        cur[4].append(stack)
                stack.append((fm.group(2), fm.group(3) or ""))
    if cur:
        yield cur


def top(stack):
    """The first three frames in QEMU's own source (libc and glib frames
    of a g_strdup_printf say nothing), else the first three at all."""
    own = [f for f in stack if "qemu/" in f[1] and not SKIP.match(f[0])]
    return own[:3] or stack[:3]


def key(stacks):
    return tuple(fn for fn, _ in top(stacks[0]))


def hotplug_frames(stacks):
    hits = []
    for st in stacks:
        depth = 0
        for fn, loc in st:
            if SKIP.match(fn):
                continue
            depth += 1
            for fpart, rx, maxd in HOTPLUG_C:
                if fpart and fpart not in loc:
                    continue
                if rx and not rx.search(fn):
                    continue
                if maxd and depth > maxd:
                    continue
                hits.append("%s %s" % (fn, loc.split("qemu/")[-1]))
                break
    return hits


def main():
    run = sys.argv[1]
    procs = {}
    if os.path.exists(os.path.join(run, "procs")):
        with open(os.path.join(run, "procs")) as f:
            for line in f:
                pid, _, args = line.strip().partition(" ")
                procs[pid] = args
    exited = set()
    groups = collections.OrderedDict()
    n_err = n_leak = leak_bytes = n_hot = 0
    for path in sorted(glob.glob(os.path.join(run, "asan.*"))):
        pid = path.rsplit(".", 1)[1]
        procs.setdefault(pid, "?")
        with open(path, errors="replace") as f:
            text = f.read()
        if "exit stats" in text or "LeakSanitizer: detected" in text:
            exited.add(pid)
        for kind, detail, nbytes, nobj, stacks in parse(path):
            if not stacks[0]:
                continue
            k = (kind, detail if kind == "error" else "leak") + key(stacks)
            g = groups.setdefault(k, {"n": 0, "bytes": 0, "objs": 0,
                                      "pids": set(), "hot": set(),
                                      "kinds": set(), "top": stacks[0]})
            hot = hotplug_frames(stacks)
            g["n"] += 1
            g["bytes"] += nbytes
            g["objs"] += nobj
            g["pids"].add(pid)
            g["hot"].update(hot)
            g["kinds"].add(detail)
            if kind == "error":
                n_err += 1
            else:
                n_leak += 1
                leak_bytes += nbytes
            n_hot += bool(hot)
    print("asan report for %s" % run)
    print("  %d QEMU processes started, %d reached exit (LSan ran), %d "
          "killed or crashed before exit (no leak check)"
          % (len(procs), len(exited), len(procs) - len(exited)))
    for i, (k, g) in enumerate(sorted(
            groups.items(), key=lambda kv: (-bool(kv[1]["hot"]),
                                            -kv[1]["bytes"]))):
        print("\n[%d] %s %s: %d reports, %d bytes in %d objects, %d "
              "processes; %s" % (
                  i + 1, k[0], "/".join(sorted(g["kinds"])), g["n"],
                  g["bytes"], g["objs"], len(g["pids"]),
                  "HOTPLUG PATH" if g["hot"] else "not hotplug"))
        for fn, loc in top(g["top"]):
            print("      %s %s" % (fn, loc.split("qemu/")[-1]))
        for h in sorted(g["hot"])[:4]:
            print("    hotplug frame: %s" % h)
    print("\nasan: %d processes, %d error reports, %d leak reports (%d "
          "bytes), %d in hotplug paths"
          % (len(procs), n_err, n_leak, leak_bytes, n_hot))
    return 1 if n_hot else 0


if __name__ == "__main__":
    sys.exit(main())
