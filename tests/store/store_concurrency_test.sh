#!/usr/bin/env bash
# Concurrent writers on one chunk store (shared/specs/reliability.md §5.3 F9, F10): three processes
# ingest overlapping layers (one shared chunk pool) into the same store while a fourth runs gc in a
# loop and a fifth verifies and rebuilds every layer over and over (F11); all must succeed, then verify must be clean and every committed layer must rebuild.
# With a third argument `delta`, the writers store their new chunks as deltas of shared pool
# chunks, so gc races bases: a delta whose base was collected before its commit must be refused
# (and the layer redone whole), never committed pointing at nothing.
# Usage: store_concurrency_test.sh <strata_store_stress> <work dir> [delta]
set -euo pipefail

stress=$1
work=$2
mode=${3:-}
rm -rf "$work"
mkdir -p "$work"
store=$work/store

pids=()
for seed in 101 202 303; do
  "$stress" ingest "$store" "$seed" 40 5 ${mode:+"$mode"} >"$work/log.$seed" 2>"$work/err.$seed" &
  pids+=($!)
done
"$stress" gc "$store" 20 2>"$work/err.gc" &
pids+=($!)
# A reader verifying and rebuilding every layer while the others write, remove and collect.
"$stress" watch "$store" 15 2>"$work/err.watch" &
pids+=($!)

failed=0
for pid in "${pids[@]}"; do
  if ! wait "$pid"; then failed=1; fi
done
if ((failed)); then
  cat "$work"/err.* >&2
  exit 1
fi
"$stress" gc "$store" 1
"$stress" check "$store" "$work"/log.*
