#!/bin/sh
# Configure (once) and build the assembled tree: x86_64 and aarch64 system
# emulators plus the qtests that make check runs.  ccache makes a rebuild
# after a fresh unpack cheap.  TREE, BDIR, CONFIGURE_EXTRA and TARGETS
# let scripts/build-asan.sh build a variant elsewhere.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TREE=${TREE:-$ROOT/build/qemu}
BDIR=${BDIR:-$TREE/build}
export PATH=/usr/lib/ccache:$PATH
export CCACHE_DIR=${CCACHE_DIR:-/var/cache/vcpu-hotplug-ccache}
export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-5G}
# Hits across clones in other folders (CI builds in a fresh clone): hash
# paths relative to the repo and ignore the build folder's name.
export CCACHE_BASEDIR=$ROOT CCACHE_NOHASHDIR=1

if [ ! -f "$BDIR/build.ninja" ]; then
    mkdir -p "$BDIR"
    (cd "$BDIR" && "$TREE/configure" --python=/usr/bin/python3 \
        --target-list=x86_64-softmmu,aarch64-softmmu \
        --disable-docs --disable-rust --disable-user --disable-tools \
        --disable-guest-agent --disable-install-blobs --disable-werror \
        --firmwarepath=/usr/share/qemu:/usr/share/seabios:/usr/lib/ipxe/qemu:/usr/share/qemu-efi-aarch64 \
        ${CONFIGURE_EXTRA:-})
fi
cd "$BDIR"
ninja ${NINJA_ARGS:-} ${TARGETS:-qemu-system-x86_64 qemu-system-aarch64 \
    tests/qtest/cpu-plug-test tests/qtest/cpu-unplug-test \
    tests/qtest/bios-tables-test \
    tests/qtest/numa-test tests/qtest/device-introspect-test}

# bios-tables-test boots virt with pc-bios/edk2-aarch64-code.fd and
# edk2-arm-vars.fd (64 MiB flash images), which Debian strips too: use
# Debian's AAVMF images, the same edk2 build padded the same way.
mkdir -p pc-bios
for f in edk2-aarch64-code.fd:AAVMF_CODE.fd edk2-arm-vars.fd:AAVMF_VARS.fd; do
    [ -e "/usr/share/AAVMF/${f#*:}" ] && ln -sfn "/usr/share/AAVMF/${f#*:}" \
        "pc-bios/${f%%:*}"
done

# Debian strips the firmware blobs from its source.  A QEMU run from the
# build tree (qtests) looks for firmware in its qemu-bundle, at the
# configured --firmwarepath relocated there: link Debian's packaged dirs.
for d in /usr/share/seabios /usr/share/qemu /usr/lib/ipxe/qemu \
         /usr/share/qemu-efi-aarch64; do
    [ -d "$d" ] || continue
    if [ ! -e "qemu-bundle$d" ]; then
        mkdir -p "qemu-bundle$(dirname "$d")"
        ln -s "$d" "qemu-bundle$d"
    fi
done
