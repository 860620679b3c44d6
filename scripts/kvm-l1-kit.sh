#!/bin/sh
# Build the x86 L1 kit for nested KVM (tests/e2e/nested.py): an initramfs for
# the kit's Debian 6.1 kernel that loads kvm-amd and runs our
# qemu-system-x86_64 with -accel kvm for the L2 test guest.  This host's
# /dev/kvm cannot run Linux; KVM inside a TCG guest with SVM can
# (/work/shared/docs/nested-kvm.md).  Output: $KIT/initrd-l1.img, rebuilt
# when QEMU, the L2 guest, the L1 /init or this script is newer.
# Run scripts/guest-kit.sh first (the kernel and busybox come from it).
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KIT=${KIT:-/var/cache/vcpu-hotplug/kit}
QEMU=${QEMU_BUILD:-$ROOT/build/qemu/build}/qemu-system-x86_64
INIT=$ROOT/tests/e2e/guest/l1-init
OUT=$KIT/initrd-l1.img
# OVMF's SMM build for the kvm/q35/ovmf-smm L2, at the host's paths that
# test_ovmf.py names; l1-init copies the VARS template for each L2.  Only
# these two files, not the whole package.
OVMF_CODE=/usr/share/OVMF/OVMF_CODE_4M.secboot.fd
OVMF_VARS=/usr/share/OVMF/OVMF_VARS_4M.fd

fresh=1
for f in "$QEMU" "$INIT" "$0" "$ROOT/scripts/mkinitramfs.py" \
         "$KIT/vmlinuz-x86-6.1" "$KIT/initrd-x86.img" "$OVMF_CODE" \
         "$OVMF_VARS"; do
    [ -e "$f" ] || { echo "kvm-l1-kit: missing $f" >&2; exit 1; }
    [ -s "$OUT" ] && [ ! "$f" -nt "$OUT" ] || fresh=0
done
[ $fresh = 1 ] && { echo "$OUT"; exit 0; }

# KVM modules from the very package of the kernel (same build, or insmod
# refuses them); cached per package name.
pkg=$(cat "$KIT/vmlinuz-x86-6.1.pkg")
mods=$KIT/l1-modules/$pkg
if [ ! -s "$mods/kvm-amd.ko" ]; then
    tmp=$(mktemp -d)
    (cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root \
        "$pkg:amd64" >&2)
    dpkg-deb -x "$tmp"/*.deb "$tmp/x"
    mkdir -p "$mods.tmp"
    for m in virt/lib/irqbypass drivers/crypto/ccp/ccp arch/x86/kvm/kvm \
             arch/x86/kvm/kvm-amd; do
        cp "$tmp"/x/lib/modules/*/kernel/$m.ko "$mods.tmp/"
    done
    rm -rf "$tmp" "$mods"
    mv "$mods.tmp" "$mods"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
strip -o "$tmp/qemu" "$QEMU"
set -- "bin/qemu-system-x86_64=$tmp/qemu" \
    "kit/vmlinuz=$KIT/vmlinuz-x86-6.1" "kit/initrd=$KIT/initrd-x86.img" \
    "${OVMF_CODE#/}=$OVMF_CODE" "${OVMF_VARS#/}=$OVMF_VARS"
for m in "$mods"/*.ko; do set -- "$@" "lib/modules/${m##*/}=$m"; done
# l1-init loads them in this order (the dependencies first).
echo irqbypass ccp kvm kvm-amd > "$tmp/order"
set -- "$@" "lib/modules/order=$tmp/order"
# ldd: "libx.so.1 => /lib/.../libx.so.1 (0x...)" and the loader's own line
for lib in $(ldd "$QEMU" | sed -n 's/.*=> \(\/[^ ]*\) .*/\1/p;
                                   s/^[[:space:]]*\(\/[^ ]*\) (.*/\1/p'); do
    set -- "$@" "$lib=$lib"
done
# Firmware an L2 can ask for, found in vm.FW_DIRS's order (SeaBIOS first).
for f in bios-256k.bin bios.bin bios-microvm.bin kvmvapic.bin qboot.rom \
         linuxboot_dma.bin linuxboot.bin multiboot_dma.bin pvh.bin; do
    for d in /usr/share/seabios /usr/share/qemu; do
        [ -e "$d/$f" ] && { set -- "$@" "fw/$f=$d/$f"; break; }
    done
done
python3 "$ROOT/scripts/mkinitramfs.py" "$KIT/busybox-amd64" "$INIT" \
    "$OUT" "$@"
echo "kvm-l1-kit: $OUT ($(du -k "$OUT" | cut -f1) KiB)" >&2
echo "$OUT"
