# Thin driver around CMake so that a fresh Debian 12 machine needs only
# `make demo` and `make test`. Both install missing Debian packages first.
#
#   make demo            build, then run the end-to-end demo on ./var/demo
#   make demo-federation two districts, NATS JetStream and a city replica,
#                        on ./var/demo-federation
#   make test            build and run the whole CTest suite
#   make test-sanitize   the same suite built with ASan + UBSan
#   make test-valgrind   module tests, and every broker the integration tests
#                        start, under valgrind memcheck
#   make bench           every benchmark side by side, 3 rounds (about 40 minutes
#                        on 2 cores); writes docs/benchmarks.md and docs/benchmarks.png
#   make bench-quick     the same at a small scale, under 2 minutes (CI): checks
#                        the benchmark still works, asserts no timings
#   make bench-city      7,000,000 households (x CITY_SCALE, default 1) in one
#                        store: ingest against an empty store, pull-sync, stats;
#                        writes docs/benchmarks-city.md and the figures
#                        make bench's goals table quotes,
#                        docs/benchmarks-city.results (at scale 1 an 8 GB
#                        store and 2 to 13 minutes on 2 shared cores, most of
#                        them the pre-fill; CITY_SCALE=0.01 takes about one)
#   make fuzz            libFuzzer targets (clang), FUZZ_SECONDS each
#   make install         build, then install (PREFIX, default /usr/local and
#                        kept in $(BUILD); DESTDIR for a staged install)
#   make package         the Debian package $(BUILD)/gridsync_VERSION_ARCH.deb,
#                        built in $(PKGBUILD) with the prefix /usr
#   make test-package    install that package into a bare Debian 12 root
#                        (debootstrap, cached in $(BUILD)) and run the broker
#                        there; needs root
#   make clean

BUILD    ?= build
SANBUILD ?= build-sanitize
FUZZBUILD ?= build-fuzz
PKGBUILD ?= build-package
PREFIX   ?=
DESTDIR  ?=
FUZZ_SECONDS ?= 60
CITY_SCALE ?= 1
FUZZ_TARGETS := fuzz_upload fuzz_sync fuzz_store_apply fuzz_replicate fuzz_topic \
                fuzz_categories
JOBS     ?= $(shell nproc 2>/dev/null || echo 2)
CTEST_ARGS ?=

# Debian packages the build, tests and demo need (python3-zmq,
# python3-protobuf and protobuf-compiler: the Python client and its tests;
# nats-server and libnats-dev: federation over NATS JetStream; libssl-dev:
# libcrypto's SHA-256 for the person index's HMAC; liblz4-dev: the change
# log's events compressed at rest).
DEBS := build-essential cmake pkg-config \
        libzmq3-dev libczmq-dev libprotobuf-c-dev protobuf-c-compiler \
        protobuf-compiler liblmdb-dev libsodium-dev libcmocka-dev \
        lmdb-utils clang libclang-rt-14-dev \
        python3 python3-zmq python3-protobuf \
        nats-server libnats-dev openssl libssl-dev liblz4-dev

# What only the benchmarks need (the PostgreSQL peer, the chart, fincore for
# the share of the city store in the page cache), kept
# apart so that `make test` never installs a database server.
BENCH_DEBS := postgresql libpq-dev gnuplot-nox util-linux-extra

# What only the Debian package needs: dpkg-shlibdeps (the package's
# Depends) and debootstrap (the bare Debian 12 root test-package installs
# it into).
PACKAGE_DEBS := dpkg-dev debootstrap

.PHONY: all deps bench-deps valgrind-deps package-deps build bench-build demo demo-federation test test-sanitize \
        test-valgrind fuzz bench bench-quick bench-city install package test-package clean

all: build

# install_debs PACKAGES: apt-get the ones not installed yet (sudo unless root)
define install_debs
	@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi
endef

deps:
	$(call install_debs,$(DEBS))

bench-deps: deps
	$(call install_debs,$(BENCH_DEBS))

valgrind-deps: deps
	$(call install_debs,valgrind)

package-deps: deps
	$(call install_debs,$(PACKAGE_DEBS))

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

demo: build
	@$(BUILD)/tools/gridsync-demo var/demo

demo-federation: build
	@$(BUILD)/tools/gridsync-demo-federation var/demo-federation

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

test-sanitize: deps
	cmake -S . -B $(SANBUILD) -DCMAKE_BUILD_TYPE=Debug -DGRIDSYNC_SANITIZE=ON
	cmake --build $(SANBUILD) -j $(JOBS)
	cd $(SANBUILD) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
	  ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

test-valgrind: valgrind-deps build
	tests/run_valgrind.sh $(BUILD)

# The unit and the config path are fixed at configure time, so PREFIX
# configures $(BUILD) again before the build.
install: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(if $(PREFIX),-DCMAKE_INSTALL_PREFIX=$(PREFIX))
	cmake --build $(BUILD) -j $(JOBS)
	DESTDIR="$(if $(DESTDIR),$(abspath $(DESTDIR)))" cmake --install $(BUILD)

# A tree of its own with the prefix /usr (config in /etc) and no test
# programs; the .deb goes to $(BUILD). CPack stages it in $(PKGBUILD).
package: package-deps
	cmake -S . -B $(PKGBUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr \
	  -DGRIDSYNC_TESTS=OFF
	cmake --build $(PKGBUILD) -j $(JOBS)
	mkdir -p $(BUILD) && rm -f $(BUILD)/gridsync_*.deb
	cd $(PKGBUILD) && cpack -G DEB -B $(abspath $(PKGBUILD))/cpack
	mv $(PKGBUILD)/cpack/gridsync_*.deb $(BUILD)/
	@ls $(BUILD)/gridsync_*.deb

test-package: package
	tests/package/test_package.sh $(BUILD) $(BUILD)/gridsync_*.deb

# Each target runs on a copy of its seed corpus and regression inputs in
# $(FUZZBUILD)/corpus (libFuzzer adds what it finds there, never in the
# repository); its stores go under $(FUZZBUILD)/tmp. A crash stops make;
# the input is saved as
# $(FUZZBUILD)/artifacts/<target>-crash-*: add it to
# tests/fuzz/regressions/<target>/ with the fix.
fuzz: deps
	CC=clang cmake -S . -B $(FUZZBUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DGRIDSYNC_FUZZ=ON -DGRIDSYNC_SANITIZE=ON
	cmake --build $(FUZZBUILD) -j $(JOBS) --target $(FUZZ_TARGETS)
	@set -e; mkdir -p $(FUZZBUILD)/artifacts $(FUZZBUILD)/tmp; \
	for t in $(FUZZ_TARGETS); do \
	  rm -rf $(FUZZBUILD)/corpus/$$t; mkdir -p $(FUZZBUILD)/corpus/$$t; \
	  cp tests/fuzz/corpus/$$t/* $(FUZZBUILD)/corpus/$$t/; \
	  if [ -d tests/fuzz/regressions/$$t ]; then \
	    cp tests/fuzz/regressions/$$t/* $(FUZZBUILD)/corpus/$$t/ 2>/dev/null || true; fi; \
	  echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
	  TMPDIR=$(abspath $(FUZZBUILD))/tmp ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	    $(FUZZBUILD)/tests/fuzz/$$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    -artifact_prefix=$(FUZZBUILD)/artifacts/$$t- $(FUZZBUILD)/corpus/$$t; \
	done

# Configure again so that the PostgreSQL peer is built once libpq is there.
bench-build: bench-deps $(BUILD)/CMakeCache.txt
	cmake -S . -B $(BUILD) > /dev/null
	cmake --build $(BUILD) -j $(JOBS)

bench: bench-build
	tools/bench/run_bench.sh $(BUILD) docs

bench-quick: bench-build
	@out=$$(mktemp -d); tools/bench/run_bench.sh --quick $(BUILD) $$out; rc=$$?; \
	rm -rf $$out; exit $$rc

bench-city: bench-build
	tools/bench/run_bench.sh --city $(CITY_SCALE) $(BUILD) docs

clean:
	rm -rf $(BUILD) $(SANBUILD) $(FUZZBUILD) $(PKGBUILD)
