#!/usr/bin/env python3
"""Write a gzip'ed newc cpio initramfs holding busybox and our /init.

usage: mkinitramfs.py BUSYBOX INIT OUTPUT

Standard library only: no cpio or busybox needed on the host.  Busybox
applets are installed as symlinks so that the guest needs no --install.
"""
import gzip
import sys

APPLETS = """sh ash cat echo ls mount mkdir sleep sed grep cut tr head tail
wc seq dmesg taskset stty printf test [ true false kill ps uname date
awk nproc poweroff reboot halt sync rm ln chmod dd od umount uevent setsid timeout""".split()


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
    for d in ("bin", "dev", "proc", "sys", "tmp", "run"):
        blob += entry(d, 0o040755)
    blob += entry("bin/busybox", 0o100755, open(busybox, "rb").read())
    for a in APPLETS:
        blob += entry("bin/" + a, 0o120777, b"busybox")
    blob += entry("init", 0o100755, open(init, "rb").read())
    blob += entry("TRAILER!!!", 0)
    blob += b"\0" * (-len(blob) % 512)
    with gzip.open(output + ".tmp", "wb", compresslevel=6) as f:
        f.write(blob)
    import os
    os.replace(output + ".tmp", output)


if __name__ == "__main__":
    main()
