#!/bin/sh
# Build the guest kit from Debian packages: kernels and busybox initramfs
# for x86_64 and arm64.  Output in $KIT (cached outside the repo, reused
# when present):
#   vmlinuz-x86-6.1  vmlinuz-x86-6.12  Image-arm64-6.12  (+ config-*)
#   initrd-x86.img   initrd-arm64.img
#   QEMU_EFI.fd      (symlink to the qemu-efi-aarch64 firmware)
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KIT=${KIT:-/var/cache/vcpu-hotplug/kit}
mkdir -p "$KIT/deb"
cd "$KIT/deb"

newest() { # newest package whose name matches the extended regexp $1
    apt-cache search --names-only "$1" | cut -d' ' -f1 | sort -V | tail -n 1
}

kernel() { # $1 regexp, $2 arch, $3 output name
    out=$KIT/$3
    [ -s "$out" ] && return 0
    pkg=$(newest "$1")
    [ -n "$pkg" ] || { echo "guest-kit: no package matches $1" >&2; exit 1; }
    rm -f "${pkg}"_*.deb
    apt-get download -q -o APT::Sandbox::User=root "$pkg:$2" >&2
    dir=$(mktemp -d)
    dpkg-deb --fsys-tarfile "${pkg}"_*.deb |
        tar -x -C "$dir" --wildcards './boot/vmlinu*' './boot/config-*'
    cp "$dir"/boot/vmlinu* "$out.tmp"
    cp "$dir"/boot/config-* "$KIT/config-$3"
    rm -rf "$dir" "${pkg}"_*.deb
    mv "$out.tmp" "$out"
    echo "$pkg" > "$out.pkg"
    echo "guest-kit: $3 <- $pkg" >&2
}

busybox() { # $1 arch
    out=$KIT/busybox-$1
    [ -x "$out" ] && return 0
    rm -f busybox-static_*.deb
    apt-get download -q -o APT::Sandbox::User=root "busybox-static:$1" >&2
    dir=$(mktemp -d)
    dpkg-deb -x busybox-static_*.deb "$dir"
    cp "$dir/bin/busybox" "$out"
    rm -rf "$dir" busybox-static_*.deb
}

kernel '^linux-image-6\.1\.0-[0-9]+-amd64-unsigned$' amd64 vmlinuz-x86-6.1
kernel '^linux-image-6\.12\.[0-9]+\+deb12-amd64-unsigned$' amd64 vmlinuz-x86-6.12
kernel '^linux-image-6\.12\.[0-9]+\+deb12-arm64-unsigned$' arm64 Image-arm64-6.12
busybox amd64
busybox arm64

for a in x86 arm64; do
    bb=amd64; [ $a = arm64 ] && bb=arm64
    # Rebuild when the init script or the generator changed.
    if [ ! -s "$KIT/initrd-$a.img" ] ||
       [ "$ROOT/tests/e2e/guest/init" -nt "$KIT/initrd-$a.img" ] ||
       [ "$ROOT/scripts/mkinitramfs.py" -nt "$KIT/initrd-$a.img" ]; then
        python3 "$ROOT/scripts/mkinitramfs.py" "$KIT/busybox-$bb" \
            "$ROOT/tests/e2e/guest/init" "$KIT/initrd-$a.img"
    fi
done
ln -sfn /usr/share/qemu-efi-aarch64/QEMU_EFI.fd "$KIT/QEMU_EFI.fd"
echo "$KIT"
