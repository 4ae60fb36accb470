# The two commands of the README, plus helpers. Both main targets install what is missing first.
#   make run   - install, build, and run strata's main job on real data of this machine
#   make test  - install, build (Release with assertions, -Werror) and run every test
#   make bench - build and run the Google Benchmark harness
#   make fuzz  - libFuzzer + ASan/UBSan build, every target for FUZZ_SECONDS (default 60)
JOBS ?= $(shell nproc)
BUILD ?= build
CMAKE_FLAGS ?=

ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60

.PHONY: all deps build run test test-asan bench fuzz clean format

all: build

deps:
	@scripts/install-deps.sh

$(BUILD)/build.ninja: CMakeLists.txt
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release -DSTRATA_ASSERTIONS=ON \
	  -DSTRATA_WERROR=ON $(CMAKE_FLAGS)

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

run: build
	@scripts/run-demo.sh $(BUILD)/tools/strata

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 900
	@$(MAKE) --no-print-directory test-asan

# The unit suites and fuzz-corpus replays again under AddressSanitizer + UBSan (separate tree).
# -O1 -g1: sanitizer reports keep function names and line numbers, and the tree builds in
# under half the time of -O2 -g (test_bad_inputs.cpp: 34 s of CPU instead of 87 s).
test-asan: deps
	cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTRATA_SANITIZE=ON \
	  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g1" \
	  -DSTRATA_WERROR=ON -DSTRATA_BUILD_BENCH=OFF -DSTRATA_INSTALL=OFF $(CMAKE_FLAGS) >/dev/null
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS) --timeout 900 -L 'unit|fuzz_replay'

bench: build
	@STRATA_EXTRA_PACKAGES="casync time podman" scripts/install-deps.sh
	$(BUILD)/bench/bench_chunker --benchmark_min_time=0.5
	bench/ingest_compare.sh $(BUILD)/tools/strata $(BUILD)/bench-ingest

# libFuzzer builds (clang, ASan + UBSan), each target run FUZZ_SECONDS from its seed corpus.
fuzz:
	@STRATA_EXTRA_PACKAGES="clang libclang-rt-14-dev llvm" scripts/install-deps.sh
	cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DSTRATA_FUZZ=ON \
	  -DSTRATA_BUILD_TESTS=OFF -DSTRATA_BUILD_BENCH=OFF -DSTRATA_BUILD_TOOLS=OFF \
	  -DSTRATA_BUILD_FUZZ_REPLAY=OFF -DSTRATA_INSTALL=OFF >/dev/null
	cmake --build $(FUZZ_BUILD) -j $(JOBS)
	FUZZ_SECONDS=$(FUZZ_SECONDS) fuzz/run_fuzzers.sh $(FUZZ_BUILD)

format:
	git ls-files '*.cpp' '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD)
