#!/usr/bin/env bash
# `make fuzz`: runs every libFuzzer target of a STRATA_FUZZ=ON build for a bounded time each
# (FUZZ_SECONDS, default 60), starting from a scratch copy of its seed corpus (the committed corpus
# is never modified), and prints executions per target and in total. Exits non-zero when a target
# finds a crash; the crashing input is left in the build folder as crash-*.
set -uo pipefail
build=$(cd "${1:?usage: run_fuzzers.sh BUILD_DIR}" && pwd)
seconds=${FUZZ_SECONDS:-60}
here=$(cd "$(dirname "$0")" && pwd)
total=0
failed=0
printf '%-28s %12s %10s %s\n' target executions exec/s result
for binary in "$build"/fuzz/fuzz_*; do
  [ -x "$binary" ] || continue
  name=$(basename "$binary")
  work="$build/fuzz-work/$name"
  rm -rf "$work" && mkdir -p "$work/corpus"
  cp -r "$here/corpus/$name/." "$work/corpus/" 2>/dev/null || true
  dict=()
  [ -f "$here/dict/$name.dict" ] && dict=(-dict="$here/dict/$name.dict")
  (cd "$work" && "$binary" -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=2048 \
    -max_len=1048576 "${dict[@]}" corpus >"$work/log.txt" 2>&1)
  status=$?
  runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$work/log.txt" | grep -oE '[0-9]+$' | tail -1)
  speed=$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "$work/log.txt" | grep -oE '[0-9]+$' | tail -1)
  result=ok
  if [ $status -ne 0 ]; then
    result="CRASH (see $work/log.txt)"
    failed=$((failed + 1))
  fi
  printf '%-28s %12s %10s %s\n' "$name" "${runs:-0}" "${speed:-0}" "$result"
  total=$((total + ${runs:-0}))
done
echo "total executions: $total; targets with findings: $failed"
[ $failed -eq 0 ]
