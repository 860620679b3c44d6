#!/usr/bin/env python3
"""Write a gzip'ed newc cpio initramfs holding busybox and our /init.

usage: mkinitramfs.py BUSYBOX INIT OUTPUT [PATH=FILE ...]

Standard library only: no cpio or busybox needed on the host.  Busybox
applets are installed as symlinks so that the guest needs no --install.
PATH=FILE adds a host file (symlinks followed, mode kept) at PATH in the
archive, with its directories: the nested-KVM L1 kit adds QEMU, its
libraries, firmware and the L2 guest that way (scripts/kvm-l1-kit.sh).
"""
import gzip
import os
import sys

APPLETS = """sh ash cat echo ls mount mkdir sleep sed grep cut tr head tail
wc seq dmesg taskset stty printf test [ true false kill ps uname date
awk nproc poweroff reboot halt sync rm ln chmod dd od umount uevent setsid timeout
insmod""".split()


def entry(name, mode, data=b"", ino=[0]):
    ino[0] += 1
    hdr = "070701" + "".join("%08X" % v for v in (
        ino[0], mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0,
        len(name) + 1, 0))
    out = hdr.encode() + name.encode() + b"\0"
    out += b"\0" * (-len(out) % 4)
    out += data + b"\0" * (-len(data) % 4)
    return out


def main():
    busybox, init, output = sys.argv[1:4]
    blob = bytearray()
    dirs = ["bin", "dev", "proc", "sys", "tmp", "run"]
    for d in dirs:
        blob += entry(d, 0o040755)
    blob += entry("bin/busybox", 0o100755, open(busybox, "rb").read())
    for a in APPLETS:
        blob += entry("bin/" + a, 0o120777, b"busybox")
    blob += entry("init", 0o100755, open(init, "rb").read())
    for arg in sys.argv[4:]:
        path, src = arg.split("=", 1)
        path = path.strip("/")
        parts = path.split("/")[:-1]
        for i in range(len(parts)):
            d = "/".join(parts[:i + 1])
            if d not in dirs:
                dirs.append(d)
                blob += entry(d, 0o040755)
        mode = 0o100755 if os.access(src, os.X_OK) else 0o100644
        blob += entry(path, mode, open(src, "rb").read())
    blob += entry("TRAILER!!!", 0)
    blob += b"\0" * (-len(blob) % 512)
    with gzip.open(output + ".tmp", "wb", compresslevel=6) as f:
        f.write(blob)
    os.replace(output + ".tmp", output)


if __name__ == "__main__":
    main()
