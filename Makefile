# kclpp developer entry points.
#
#   make test    deps, build (-Werror), all ctest tests, ASan+UBSan unit tests, the package
#                test (.deb files, find_package consumer, units), 6 s of fuzzing per parser
#                (what CI runs)
#   make package the kclpp and kclpp-dev .deb files (CPack) from build/, in build/packages/
#   make demo    deps, build, start kinesalite, run the echo example natively against it;
#                then the Triton pipeline: spoold, the producer example, store to s3rver, cat, stats
#   make bench   deps, Release build, run the protocol, native-reader, fan-out, archive, spool and
#                lease-scale benchmarks
#
# Build trees: build/ (RelWithDebInfo), build-asan/, build-fuzz/ (clang), build-release/.
# KCLPP_CI=1 (set automatically when CI is set) makes tests fail, not skip, when a
# server they need is missing.

JOBS       ?= 2
FUZZ_TIME  ?= 6
BUILD_TYPE ?= RelWithDebInfo
# Debug info of the RelWithDebInfo trees: line tables only. Backtraces and sanitizer
# reports keep their file:line, and the build is about a third faster on 2 cores than
# with full -g; DEBUG_INFO=-g for a debugger's view of variables.
DEBUG_INFO ?= -g1

CMAKE       := cmake -G Ninja -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 $(DEBUG_INFO) -DNDEBUG"
# The sanitizer trees (ASan+UBSan unit tests, fuzzing) build at -O1, as the sanitizers'
# own docs advise: a third less compile time, and clearer reports.
CMAKE_SAN   := cmake -G Ninja -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 $(DEBUG_INFO) -DNDEBUG"
CTEST       := ctest --output-on-failure --no-tests=error
SANITIZE    := -DKCLPP_SANITIZE='address;undefined'

export ASAN_OPTIONS  ?= detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS ?= print_stacktrace=1:halt_on_error=1

ifneq ($(filter-out 0 false,$(CI)),)
KCLPP_CI ?= 1
endif
ifneq ($(KCLPP_CI),)
export KCLPP_CI
endif

.PHONY: all deps configure build package test test-ctest test-asan test-consumer test-package test-fuzz demo bench clean
# The stages share the 2 cores already; never run them side by side.
.NOTPARALLEL:

all: build

deps:
	@scripts/install-deps.sh

# The benchmarks build in their own Release tree (make bench), not in this one: make test
# does not run them.
configure: deps
	$(CMAKE) -S . -B build -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DKCLPP_WERROR=ON -DKCLPP_BUILD_BENCH=OFF

build: configure
	cmake --build build -j $(JOBS)

test: test-ctest test-asan test-package test-fuzz
	@echo "make test: all stages passed"

# Every unit and integration test of the main build.
test-ctest: build
	cd build && $(CTEST) -j $(JOBS)

# The unit tests once more, under AddressSanitizer + UndefinedBehaviorSanitizer.
UNIT_TESTS := kclpp_unit_tests kclpp_aws_unit_tests kclpp_native_unit_tests kclpp_cli_unit_tests kclpp_pipeline_unit_tests
# The libraries under test build at -O1, as above; the test code itself at -O0, which
# halves its compile time under the sanitizers (it is most of this tree).
test-asan: deps
	$(CMAKE_SAN) -S . -B build-asan -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DKCLPP_WERROR=ON $(SANITIZE) \
	  -DKCLPP_BUILD_BENCH=OFF -DKCLPP_TEST_OPTIMIZE=-O0
	cmake --build build-asan -j $(JOBS) --target $(UNIT_TESTS)
	set -e; for t in $(UNIT_TESTS); do build-asan/tests/$$t --gtest_brief=1; done

# kclpp installed into a prefix (cmake --install) and used by a separate project through
# find_package. Not a stage of `make test`: test-package runs the same consumer against
# the unpacked .deb files.
test-consumer: build
	tests/consumer/check.sh build

# Debian packages from the build tree: only the installed targets are built (the tool
# links every library), not the tests. RelWithDebInfo is -O2, as Debian builds; CPack strips.
package: configure
	cmake --build build -j $(JOBS) --target kclpp
	rm -rf build/packages
	cpack --config build/CPackConfig.cmake -B build/packages
	@ls -l build/packages/*.deb

# The packages built from the already built tree: metadata, contents, the tool and the
# find_package consumer run from the unpacked packages, the systemd units verified.
test-package: build
	tests/package/check.sh build

# libFuzzer on every parser of outside bytes, FUZZ_TIME seconds each, each from a copy of
# its committed corpus tests/fuzz/corpus/<name> (target kclpp_fuzz_<name>).
FUZZ_TARGETS := protocol_line kpl_aggregate get_records event_stream properties msgpack_record snappy_frames s3_xml aws_replies
test-fuzz: deps
	CC=clang CXX=clang++ $(CMAKE_SAN) -S . -B build-fuzz -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) \
	  -DKCLPP_FUZZ=ON $(SANITIZE) -DKCLPP_BUILD_EXAMPLES=OFF -DKCLPP_BUILD_BENCH=OFF
	cmake --build build-fuzz -j $(JOBS) --target $(addprefix kclpp_fuzz_,$(FUZZ_TARGETS))
	set -e; for t in $(FUZZ_TARGETS); do \
	  rm -rf build-fuzz/corpus-$$t build-fuzz/artifacts-$$t; \
	  mkdir -p build-fuzz/corpus-$$t build-fuzz/artifacts-$$t; \
	  if [ -d tests/fuzz/corpus/$$t ]; then cp -r tests/fuzz/corpus/$$t/. build-fuzz/corpus-$$t/; fi; \
	  echo "== fuzzing $$t for $(FUZZ_TIME) s"; \
	  build-fuzz/tests/fuzz/kclpp_fuzz_$$t -max_total_time=$(FUZZ_TIME) -print_final_stats=1 \
	    -artifact_prefix=build-fuzz/artifacts-$$t/ build-fuzz/corpus-$$t 2>build-fuzz/fuzz-$$t.log \
	    || { tail -50 build-fuzz/fuzz-$$t.log; exit 1; }; \
	  grep -E '^stat::number_of_executed_units|^Done' build-fuzz/fuzz-$$t.log || true; \
	done

demo: configure
	cmake --build build -j $(JOBS) --target kclpp kclpp_echo kclpp_triton_producer
	scripts/demo.sh build
	scripts/demo-pipeline.sh build

bench: deps
	$(CMAKE) -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DKCLPP_BUILD_TESTS=OFF \
	  -DKCLPP_BUILD_EXAMPLES=OFF
	cmake --build build-release -j $(JOBS)
	build-release/bench/kclpp_bench_protocol_throughput
	build-release/bench/kclpp_bench_native_throughput
	build-release/bench/kclpp_bench_fanout
	build-release/bench/kclpp_bench_archive_throughput
	build-release/bench/kclpp_bench_spool_latency
	build-release/bench/kclpp_bench_lease_scale

clean:
	rm -rf build build-asan build-fuzz build-release
