# vCPU hot-plug for QEMU: a patch series over Debian's qemu 10.0 source.
#   make demo    set everything up, then hot-plug/unplug CPUs of a real guest
#   make check   set everything up, then run every test
#   make bench   latency, scaling and memory figures (prints + JSON)
#   make soak    500 plug/unplug cycles under guest load: RSS/thread bound
#   make asan    the e2e suite under ASan + LeakSanitizer (build/qemu-asan)
#   make status  edits in build/qemu that the repo would lose
.PHONY: all setup qemu kit demo check bench soak asan status clean

all: qemu kit

setup:
	sh scripts/setup-host.sh

qemu: setup
	sh scripts/assemble.sh
	sh scripts/build-qemu.sh

kit: setup
	sh scripts/guest-kit.sh >/dev/null

demo: qemu kit
	python3 scripts/demo.py

check: qemu kit
	sh scripts/check.sh

bench: qemu kit
	python3 tests/bench/bench.py $(BENCH_ARGS)

soak: qemu kit
	python3 tests/bench/soak.py $(SOAK_ARGS)

asan: qemu kit
	nice -n 10 sh scripts/build-asan.sh
	sh scripts/asan.sh $(ASAN_ARGS)

status:
	sh scripts/status.sh

clean:
	rm -rf build
