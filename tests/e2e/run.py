#!/usr/bin/env python3
"""Run the end-to-end scenarios.  usage: run.py [-k GLOB] [-j N] [--json F]"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness          # noqa: E402
import test_x86         # noqa: E402
import test_microvm     # noqa: E402
import test_virt        # noqa: E402
import test_libvirt     # noqa: E402
import test_migration   # noqa: E402
import test_unplug      # noqa: E402
import test_replug      # noqa: E402
import test_ovmf        # noqa: E402
import test_compat      # noqa: E402
import test_kvm         # noqa: E402
import test_install     # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-k", help="only scenarios matching this glob")
    ap.add_argument("-j", type=int, default=int(os.environ.get("JOBS", 2)))
    ap.add_argument("--json")
    a = ap.parse_args()
    scen = (test_x86.scenarios() + test_microvm.scenarios() +
            test_virt.scenarios() + test_migration.scenarios() +
            test_unplug.scenarios() + test_replug.scenarios() +
            test_ovmf.scenarios() +
            test_libvirt.scenarios() + test_compat.scenarios() +
            test_kvm.scenarios() + test_install.scenarios())
    c = harness.run(scen, jobs=a.j, pattern=a.k, json_out=a.json)
    failed = c["FAIL"] + c["XPASS"]
    print("e2e: %d passed, %d failed, %d skipped, %d known failures"
          % (c["PASS"], failed, c["SKIP"], c["KNOWN"]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
