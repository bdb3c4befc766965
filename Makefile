# kclpp developer entry points.
#
#   make test    deps, build (-Werror), all ctest tests, ASan+UBSan unit tests,
#                the find_package consumer test, 60 s of fuzzing   (what CI runs)
#   make demo    deps, build, run the demo (kcl::ChildProcess driving the echo example)
#   make bench   deps, Release build, run the protocol throughput benchmark
#
# Build trees: build/ (RelWithDebInfo), build-asan/, build-fuzz/ (clang), build-release/.
# KCLPP_CI=1 (set automatically when CI is set) makes tests fail, not skip, when a
# server they need is missing.

JOBS       ?= 2
FUZZ_TIME  ?= 60
BUILD_TYPE ?= RelWithDebInfo

CMAKE       := cmake -G Ninja
CTEST       := ctest --output-on-failure --no-tests=error
SANITIZE    := -DKCLPP_SANITIZE='address;undefined'
FUZZ_CORPUS := tests/fuzz/corpus/protocol_line

export ASAN_OPTIONS  ?= detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS ?= print_stacktrace=1:halt_on_error=1

ifneq ($(filter-out 0 false,$(CI)),)
KCLPP_CI ?= 1
endif
ifneq ($(KCLPP_CI),)
export KCLPP_CI
endif

.PHONY: all deps configure build test test-ctest test-asan test-consumer test-fuzz demo bench clean
# The stages share the 2 cores already; never run them side by side.
.NOTPARALLEL:

all: build

deps:
	@scripts/install-deps.sh

configure: deps
	$(CMAKE) -S . -B build -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DKCLPP_WERROR=ON

build: configure
	cmake --build build -j $(JOBS)

test: test-ctest test-asan test-consumer test-fuzz
	@echo "make test: all stages passed"

# Every unit and integration test of the main build.
test-ctest: build
	cd build && $(CTEST) -j $(JOBS)

# The unit tests once more, under AddressSanitizer + UndefinedBehaviorSanitizer.
test-asan: deps
	$(CMAKE) -S . -B build-asan -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DKCLPP_WERROR=ON $(SANITIZE) \
	  -DKCLPP_BUILD_BENCH=OFF
	cmake --build build-asan -j $(JOBS) --target kclpp_unit_tests
	build-asan/tests/kclpp_unit_tests

# kclpp installed into a prefix and used by a separate project through find_package.
test-consumer: build
	tests/consumer/check.sh build

# libFuzzer on the protocol line parser, from a copy of the committed corpus.
test-fuzz: deps
	CC=clang CXX=clang++ $(CMAKE) -S . -B build-fuzz -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) \
	  -DKCLPP_FUZZ=ON $(SANITIZE) -DKCLPP_BUILD_EXAMPLES=OFF -DKCLPP_BUILD_BENCH=OFF
	cmake --build build-fuzz -j $(JOBS) --target kclpp_fuzz_protocol_line
	mkdir -p $(FUZZ_CORPUS)
	rm -rf build-fuzz/corpus build-fuzz/artifacts
	cp -r $(FUZZ_CORPUS) build-fuzz/corpus
	mkdir -p build-fuzz/artifacts
	build-fuzz/tests/fuzz/kclpp_fuzz_protocol_line -max_total_time=$(FUZZ_TIME) \
	  -print_final_stats=1 -artifact_prefix=build-fuzz/artifacts/ build-fuzz/corpus

demo: configure
	cmake --build build -j $(JOBS) --target kclpp_demo kclpp_echo
	build/examples/kclpp_demo

bench: deps
	$(CMAKE) -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DKCLPP_BUILD_TESTS=OFF \
	  -DKCLPP_BUILD_EXAMPLES=OFF
	cmake --build build-release -j $(JOBS)
	build-release/bench/kclpp_bench_protocol_throughput

clean:
	rm -rf build build-asan build-fuzz build-release
