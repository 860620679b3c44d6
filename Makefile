# vCPU hot-plug for QEMU: a patch series over Debian's qemu 10.0 source.
#   make demo    set everything up, then hot-plug/unplug CPUs of a real guest
#   make check   set everything up, then run every test
#   make check-kvm  only the kvm/* scenarios (real KVM in nested L1 guests)
#   make bench   latency, scaling and memory figures (prints + JSON), scale too
#   make scale   hot-plug cost as the vCPU count grows: stock vs ours
#   make soak    500 plug/unplug cycles under guest load: RSS/thread bound
#   make asan    the e2e suite under ASan + LeakSanitizer (build/qemu-asan)
#   make stock   stock QEMU 10.0 (the base without our series) in build/qemu-stock
#   make status  edits in build/qemu that the repo would lose
#   make series  patches/ as git format-patch output, one posting per topic
#                with cover letters; git am + checkpatch check
#   make bisect  build after every patch of the series, qtests per topic
#   make install PREFIX=/usr/local  install our qemu-system-x86_64 and -aarch64
.PHONY: all setup qemu stock kit demo check check-kvm bench scale soak asan \
	status series bisect install clean

all: qemu kit

setup:
	sh scripts/setup-host.sh

qemu: setup
	sh scripts/assemble.sh
	sh scripts/build-qemu.sh

stock: setup
	sh scripts/build-stock.sh

kit: setup
	sh scripts/guest-kit.sh >/dev/null

demo: qemu kit
	python3 scripts/demo.py

check: qemu stock kit
	sh scripts/check.sh

# scripts/check.sh builds the L1 kits too (they need the built QEMU; the
# arm64 L1 an arm64 build of it, build/qemu-arm64).
check-kvm: qemu kit
	sh scripts/kvm-l1-kit.sh >/dev/null
	sh scripts/build-arm64.sh
	sh scripts/kvm-l1-kit-arm64.sh >/dev/null
	python3 tests/e2e/run.py -k 'kvm/*'

# bench also runs scale: QEMU's own cost of a plug next to stock 10.0's
bench: qemu stock kit
	python3 tests/bench/bench.py $(BENCH_ARGS)
	python3 tests/bench/scale.py $(SCALE_ARGS)

scale: qemu stock kit
	python3 tests/bench/scale.py $(SCALE_ARGS)

soak: qemu kit
	python3 tests/bench/soak.py $(SOAK_ARGS)

asan: qemu kit
	nice -n 10 sh scripts/build-asan.sh
	sh scripts/asan.sh $(ASAN_ARGS)

status:
	sh scripts/status.sh

series: setup
	sh scripts/series.sh

bisect: setup
	sh scripts/bisect.sh

PREFIX ?= /usr/local
install: qemu
	PREFIX="$(PREFIX)" sh scripts/install.sh

clean:
	rm -rf build
