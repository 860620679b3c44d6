#!/bin/sh
# Fetch Debian's qemu source package named in qemu-base.conf and unpack it
# with Debian's own patches applied.  Output: $SRC_CACHE/qemu-<upstream>/
# Never downloads from anywhere but the configured Debian mirror.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/qemu-base.conf"
SRC_CACHE=${SRC_CACHE:-$ROOT/build/src}
mkdir -p "$SRC_CACHE"

# Which versions does the mirror offer?  Keep the 10.0.x ones from trixie
# (the "~bpo" rebuilds for bookworm are not the pinned base).
avail=$(apt-cache showsrc "$QEMU_DEB_SOURCE" 2>/dev/null |
        sed -n 's/^Version: //p' | grep -v '~bpo' |
        grep "^1:$QEMU_DEB_SERIES\." || true)
if [ -z "$avail" ]; then
    echo "fetch-qemu: no $QEMU_DEB_SOURCE $QEMU_DEB_SERIES.x source on the" \
         "mirror (is the trixie deb-src entry there? run scripts/setup-host.sh)" >&2
    exit 1
fi
if echo "$avail" | grep -qx "$QEMU_DEB_VERSION"; then
    ver=$QEMU_DEB_VERSION
else
    ver=$(echo "$avail" | sort -V | tail -n 1)
    echo "fetch-qemu: pinned $QEMU_DEB_VERSION is gone; using $ver" >&2
fi
upver=${ver#*:}; upver=${upver%%-*}; upver=${upver%+ds}
dir="$SRC_CACHE/qemu-$upver"
if [ -f "$dir/.unpacked-$ver" ]; then
    echo "$dir"
    exit 0
fi

cd "$SRC_CACHE"
rm -rf "$dir"
apt-get source -q --download-only "$QEMU_DEB_SOURCE=$ver" >&2 ||
    { echo "fetch-qemu: apt-get source $QEMU_DEB_SOURCE=$ver failed" >&2; exit 1; }
dsc=$(ls -t "${QEMU_DEB_SOURCE}_${ver#*:}.dsc" | head -n 1)
dpkg-source -x "$dsc" "$dir" >&2
touch "$dir/.unpacked-$ver"
echo "fetch-qemu: using $QEMU_DEB_SOURCE $ver" >&2
echo "$dir"
