#!/bin/sh
# Run a command with /dev/kvm unusable, in a private mount namespace, so
# that QEMU's qtests use TCG.  The /dev/kvm of these machines is a nested
# software KVM without SMM: tests that prefer KVM would compare tables
# (the FADT's SMI command port, say) from a configuration a real KVM host
# never has.  usage: without-kvm.sh CMD [ARGS...]
set -eu
[ -e /dev/kvm ] || exec "$@"
exec unshare -m sh -c '
    f=$(mktemp)
    mount --bind "$f" /dev/kvm
    mount -o remount,bind,ro "$f" /dev/kvm 2>/dev/null ||
        mount -o remount,bind,ro /dev/kvm
    exec "$@"' sh "$@"
