#!/bin/sh
# Build the arm64 L1 kit for nested KVM (tests/e2e/nested.py): an
# initramfs for the kit's Debian arm64 6.12 kernel (KVM built in) that
# runs our arm64 qemu-system-aarch64 (scripts/build-arm64.sh) with -accel
# kvm for the L2 virt test guest.  L1 is a TCG guest with EL2
# (virtualization=on): /work/shared/docs/nested-kvm.md.  Holds busybox,
# the stripped QEMU with the arm64 libraries it needs, the L2's UEFI
# firmware, kernel and initrd.  Output: $KIT/initrd-l1-arm64.img, rebuilt
# when any input is newer.  Run scripts/guest-kit.sh and
# scripts/build-arm64.sh first.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KIT=${KIT:-/var/cache/vcpu-hotplug/kit}
QEMU=${ARM64_BDIR:-$ROOT/build/qemu-arm64}/qemu-system-aarch64
INIT=$ROOT/tests/e2e/guest/l1-init
OUT=$KIT/initrd-l1-arm64.img
EFI=/usr/share/qemu-efi-aarch64/QEMU_EFI.fd
LIBDIRS="/usr/lib/aarch64-linux-gnu /lib/aarch64-linux-gnu"
KCONF=$KIT/config-Image-arm64-6.12

fresh=1
for f in "$QEMU" "$INIT" "$0" "$ROOT/scripts/mkinitramfs.py" \
         "$KIT/Image-arm64-6.12" "$KIT/initrd-arm64.img" "$KIT/busybox-arm64" \
         "$KCONF" "$EFI"; do
    [ -e "$f" ] || { echo "kvm-l1-kit-arm64: missing $f" >&2; exit 1; }
    [ -s "$OUT" ] && [ ! "$f" -nt "$OUT" ] || fresh=0
done
[ $fresh = 1 ] && { echo "$OUT"; exit 0; }
# What L1 needs built in (the kit has no modules): KVM, and the
# virtio-serial-pci consoles that carry L2's ports (nested.py).
for c in KVM VIRTIO_PCI VIRTIO_CONSOLE; do
    grep -q "^CONFIG_$c=y" "$KCONF" ||
        { echo "kvm-l1-kit-arm64: $KCONF: no CONFIG_$c=y" >&2; exit 1; }
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
aarch64-linux-gnu-strip -o "$tmp/qemu" "$QEMU"
set -- "bin/qemu-system-aarch64=$tmp/qemu" \
    "kit/vmlinuz=$KIT/Image-arm64-6.12" "kit/initrd=$KIT/initrd-arm64.img" \
    "fw/QEMU_EFI.fd=$EFI"

# The shared libraries QEMU needs, transitively (ldd cannot run an arm64
# binary here): each ELF's NEEDED entries, found in the multiarch dirs,
# plus the program interpreter.
need() { aarch64-linux-gnu-readelf -d "$1" |
         sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'; }
todo=$(need "$QEMU") seen=
while [ -n "$todo" ]; do
    next=
    for n in $todo; do
        case " $seen " in *" $n "*) continue ;; esac
        seen="$seen $n"
        path=
        for d in $LIBDIRS; do
            [ -e "$d/$n" ] && { path=$d/$n; break; }
        done
        [ -n "$path" ] || { echo "kvm-l1-kit-arm64: no arm64 $n" >&2; exit 1; }
        set -- "$@" "lib/aarch64-linux-gnu/$n=$path"
        next="$next $(need "$path")"
    done
    todo=$next
done
interp=$(aarch64-linux-gnu-readelf -l "$QEMU" |
         sed -n 's/.*interpreter: \([^]]*\)]/\1/p')
set -- "$@" "${interp#/}=$interp"

python3 "$ROOT/scripts/mkinitramfs.py" "$KIT/busybox-arm64" "$INIT" \
    "$OUT" "$@"
echo "kvm-l1-kit-arm64: $OUT ($(du -k "$OUT" | cut -f1) KiB)" >&2
echo "$OUT"
