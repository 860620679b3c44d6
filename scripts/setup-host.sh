#!/bin/sh
# Install everything the build, the guest kit and the tests need, from
# Debian's archive only.  Idempotent: a warm machine skips what it has.
set -eu

STAMP=/var/lib/vcpu-hotplug-setup.v4
[ -f "$STAMP" ] && [ "${FORCE_SETUP:-0}" = 0 ] && exit 0

export DEBIAN_FRONTEND=noninteractive

# The mirror this machine already uses (deb.debian.org unless configured
# otherwise), read from its own apt sources.
MIRROR=$(sed -n 's/^URIs: *\(http[^ ]*\/debian\)$/\1/p' \
         /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)
[ -n "$MIRROR" ] || MIRROR=$(sed -n 's/^deb \(http[^ ]*\/debian\) .*/\1/p' \
         /etc/apt/sources.list 2>/dev/null | head -n 1)
[ -n "$MIRROR" ] || { echo "setup-host: no Debian mirror configured" >&2; exit 1; }

cat > /etc/apt/sources.list.d/vcpu-hotplug.sources <<SRC
# Added by vcpu-hotplug scripts/setup-host.sh
Types: deb-src
URIs: $MIRROR
Suites: trixie trixie-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb deb-src
URIs: $MIRROR
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC

# Foreign-arch packages (arm64 guest kernel and busybox) are fetched with
# apt-get download, which needs the architecture known to dpkg.
dpkg --add-architecture arm64
apt-get update -q

apt-get install -y -q --no-install-recommends \
    build-essential pkg-config ccache ninja-build quilt dpkg-dev \
    python3 python3-venv flex bison \
    libglib2.0-dev libpixman-1-dev libfdt-dev zlib1g-dev libslirp-dev \
    seabios qemu-system-data ipxe-qemu qemu-efi-aarch64 ovmf \
    acpica-tools cpio xz-utils zstd file
apt-get install -y -q --no-install-recommends -t bookworm-backports \
    meson python3-pycotap

# The arm64 build of our QEMU for the nested-KVM arm64 L1
# (scripts/build-arm64.sh): the cross compiler and the :arm64 libraries
# configure needs.  libfdt-dev is not Multi-Arch: same in bookworm (its
# :arm64 one would remove the native one the x86 build needs): take the
# arm64 libfdt.so.1 and the shared headers; build-arm64.sh links it.
# pkg-config:arm64 brings the aarch64-linux-gnu-pkg-config wrapper.
apt-get install -y -q --no-install-recommends \
    crossbuild-essential-arm64 pkg-config:arm64 libglib2.0-dev:arm64 \
    libpixman-1-dev:arm64 zlib1g-dev:arm64 libfdt1:arm64

# libvirt 11.3 for tests/e2e/test_libvirt.py.  Its qemu driver needs
# systemd-container: take the one of the installed systemd, so that
# systemd itself is not upgraded.
sc=systemd-container
v=$(dpkg-query -W -f '${Version}' systemd 2>/dev/null || true)
[ -n "$v" ] && apt-cache madison systemd-container | grep -q " $v " &&
    sc="systemd-container=$v"
apt-get install -y -q --no-install-recommends "$sc" \
    libvirt-daemon/bookworm-backports libvirt-clients/bookworm-backports \
    libvirt-daemon-driver-qemu/bookworm-backports
# The test starts libvirtd by hand (no systemd here); QEMU runs as root.
conf=/etc/libvirt/qemu.conf
grep -q '^user = "root"' "$conf" ||
    printf '# vcpu-hotplug setup-host.sh\nuser = "root"\ngroup = "root"\n' \
        >> "$conf"

touch "$STAMP"
