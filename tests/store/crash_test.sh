#!/usr/bin/env bash
# Crash consistency of the chunk store (DESIGN.md §3 "Nothing lost"; shared/specs/reliability.md
# §5.3 F5): an ingest process is killed with SIGKILL at a pseudo-random moment (fixed seed) again
# and again on the same store; after every kill, `check` must find verify clean, every stored layer
# rebuilding to its diff_id, and every layer the killed processes reported as committed present.
# Every third round a gc process runs beside the ingest and is killed too; every fifth round a gc
# runs to completion, so later kills land on stores with rewritten packs.
# Usage: crash_test.sh <strata_store_stress> <work dir> [iterations]
set -euo pipefail

stress=$1
work=$2
iterations=${3:-24}
RANDOM=20261125

rm -rf "$work"
mkdir -p "$work"
store=$work/store

# Whole-process fault injection first (reliability.md §5.3 F2, F4): a failed fsync or a torn pack
# write must fail the ingest, and the layers committed before it must stay intact.
for fault in fsync_fail:1 write_fail:1 fsync_fail:3; do
  if STRATA_FAULT=$fault "$stress" ingest "$store" 9999 4 >"$work/log.fault-$fault" 2>"$work/err"; then
    echo "ingest with STRATA_FAULT=$fault succeeded" >&2
    exit 1
  fi
  "$stress" check "$store" "$work"/log.fault-*
done

for ((i = 1; i <= iterations; i++)); do
  "$stress" ingest "$store" "$i" 200 4 >"$work/log.$i" 2>"$work/err.$i" &
  pid=$!
  # Every third round a gc runs beside the ingest and is killed at the same moment.
  gc_pid=
  if ((i % 3 == 0)); then
    "$stress" gc "$store" 1000 2>"$work/gc-err.$i" &
    gc_pid=$!
  fi
  delay_ms=$((20 + RANDOM % 400))
  sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
  kill -9 "$pid" 2>/dev/null || true
  if [[ -n $gc_pid ]]; then
    kill -9 "$gc_pid" 2>/dev/null || true
    gc_status=0
    wait "$gc_pid" 2>/dev/null || gc_status=$?
    if [[ $gc_status -ne 0 && $gc_status -ne 137 ]]; then
      echo "round $i: gc failed with status $gc_status:" >&2
      cat "$work/gc-err.$i" >&2
      exit 1
    fi
  fi
  status=0
  wait "$pid" 2>/dev/null || status=$?
  # Exit 137 is the kill; 0 means it finished first; anything else is a real failure.
  if [[ $status -ne 0 && $status -ne 137 ]]; then
    echo "round $i: ingest failed with status $status:" >&2
    cat "$work/err.$i" >&2
    exit 1
  fi
  if ! "$stress" check "$store" "$work"/log.* >"$work/check.$i" 2>&1; then
    echo "round $i (killed after ${delay_ms} ms): check failed:" >&2
    cat "$work/check.$i" >&2
    exit 1
  fi
  if ((i % 5 == 0)); then
    "$stress" gc "$store" 1
  fi
  echo "round $i: killed after ${delay_ms} ms, $(grep -c committed "$work/log.$i" || true) commits; $(cat "$work/check.$i")"
done
echo "crash test passed: $iterations kills"
