#!/bin/sh
# Run a command (QEMU's qtests) in a private mount namespace that gives
# them the environment upstream's tests assume.  usage: qtest-env.sh CMD...
#  - /dev/kvm unusable, so that the qtests use TCG: the /dev/kvm of these
#    machines is a nested software KVM without SMM, and tests that prefer
#    KVM would compare tables (the FADT's SMI command port, say) from a
#    configuration a real KVM host never has;
#  - bios-microvm.bin is SeaBIOS's microvm build, as in QEMU's own
#    pc-bios/: Debian links that name to qboot, which boots only a
#    -kernel, so bios-tables-test's microvm cases (a boot sector on a
#    virtio-mmio disk) would wait forever.  Only this namespace sees it.
set -eu
exec unshare -m sh -c '
    if [ -e /dev/kvm ]; then
        f=$(mktemp)
        mount --bind "$f" /dev/kvm
        mount -o remount,bind,ro "$f" /dev/kvm 2>/dev/null ||
            mount -o remount,bind,ro /dev/kvm
    fi
    q=/usr/share/qemu s=/usr/share/seabios/bios-microvm.bin
    if [ -L $q/bios-microvm.bin ] && [ -e $s ]; then
        orig=$(mktemp -d) dir=$(mktemp -d)
        mount --bind $q "$orig"
        for f in "$orig"/*; do ln -s "$f" "$dir/${f##*/}"; done
        ln -sfn $s "$dir/bios-microvm.bin"
        mount --bind "$dir" $q
    fi
    exec "$@"' sh "$@"
