#!/usr/bin/env bash
# What an OSS-Fuzz build.sh calls for strata: builds every fuzz target with the toolchain and
# sanitizer flags OSS-Fuzz provides ($CC, $CXX, $CFLAGS, $CXXFLAGS, $LIB_FUZZING_ENGINE) and puts
# each binary in $OUT with its seed corpus zip (<target>_seed_corpus.zip) and dictionary
# (<target>.dict) next to it, as OSS-Fuzz expects.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
: "${OUT:?OUT must be set}" "${CXX:?CXX must be set}" "${LIB_FUZZING_ENGINE:?LIB_FUZZING_ENGINE must be set}"
work=${WORK:-$(mktemp -d)}
cmake -S "$src" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_C_COMPILER="${CC:-clang}" -DCMAKE_CXX_COMPILER="$CXX" \
  -DCMAKE_C_FLAGS="${CFLAGS:-}" -DCMAKE_CXX_FLAGS="${CXXFLAGS:-}" \
  -DSTRATA_FUZZ=ON -DSTRATA_FUZZ_ENGINE="$LIB_FUZZING_ENGINE" \
  -DSTRATA_BUILD_TESTS=OFF -DSTRATA_BUILD_BENCH=OFF -DSTRATA_BUILD_TOOLS=OFF \
  -DSTRATA_BUILD_FUZZ_REPLAY=OFF -DSTRATA_INSTALL=OFF
cmake --build "$work/build" -j "$(nproc)"
for binary in "$work"/build/fuzz/fuzz_*; do
  [ -x "$binary" ] || continue
  name=$(basename "$binary")
  cp "$binary" "$OUT/"
  if [ -d "$src/fuzz/corpus/$name" ]; then
    (cd "$src/fuzz/corpus/$name" && zip -q -r "$OUT/${name}_seed_corpus.zip" .)
  fi
  [ -f "$src/fuzz/dict/$name.dict" ] && cp "$src/fuzz/dict/$name.dict" "$OUT/$name.dict"
done
