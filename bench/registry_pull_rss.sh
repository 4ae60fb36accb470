#!/usr/bin/env bash
# Before/after figures for the streaming partial pull (docs/PULL.md; not run by `make test`): the
# v1 -> v2 pair of `make run` (scripts/run-demo.sh, STRATA_BENCH_MIB default 200) converted to
# zstd:chunked by strata, pushed to a docker-registry on loopback (tests/integration/
# registry_env.sh), then pulled by two strata binaries back to back, alternating, STRATA_BENCH_ROUNDS
# times (default 2): v1 into an empty store, then v2 into the store holding v1. Prints per pull the
# wall seconds and peak RSS (/usr/bin/time -v) and the bytes on the wire (pull --json), so a change
# to the pull path is compared on the same machine in the same minute (ratios, not absolutes, on a
# loaded machine). Usage: bench/registry_pull_rss.sh NEW_STRATA BASELINE_STRATA
set -euo pipefail
strata=$(realpath "${1:?new strata binary}")
baseline=$(realpath "${2:?baseline strata binary}")
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=../tests/integration/registry_env.sh
. "$root/tests/integration/registry_env.sh"
registry_env_require docker-registry curl python3 zstd tar
registry_env_init strata-bench-pull-rss
mib=${STRATA_BENCH_MIB:-200}
rounds=${STRATA_BENCH_ROUNDS:-2}

echo "== v1/v2 from scripts/run-demo.sh (STRATA_DEMO_MIB=$mib)" >&2
STRATA_DEMO_MIB=$mib "$root/scripts/run-demo.sh" "$strata" "$work/demo" >"$work/demo.log" 2>&1
for version in v1 v2; do
  "$strata" build "$work/demo/$version" --layout "$work/gz" --tag "$version" --format gzip >/dev/null
  "$strata" convert "$work/gz:$version" --to zstd:chunked --layout "$work/zc" --tag "$version" >/dev/null
done
start_registry bench
reg="127.0.0.1:$port"
for version in v1 v2; do
  "$strata" push "$work/zc:$version" "$reg/bench/strata:$version" --insecure >/dev/null
done

pull() {  # NAME BINARY VERSION STORE: one timed pull, "NAME wall_s rss_kib wire_bytes"
  /usr/bin/time -v -o "$work/$1.time" "$2" pull "$reg/bench/strata:$3" --store "$4" --insecure \
    --json >"$work/$1.json"
  python3 - "$work/$1.time" "$work/$1.json" "$1" <<'PY'
import json, re, sys
text = open(sys.argv[1]).read()
wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", text)
seconds = int(wall.group(1) or 0) * 3600 + int(wall.group(2)) * 60 + float(wall.group(3))
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
wire = json.load(open(sys.argv[2]))["bytes_fetched"]
print(f"{sys.argv[3]:<14} wall {seconds:7.2f} s  peak RSS {rss / 1024:8.1f} MiB  wire {wire / 2**20:8.2f} MiB")
PY
}

echo "== pulls (${mib} MiB layers; alternating binaries, back to back)"
for round in $(seq "$rounds"); do
  for which in baseline new; do
    binary=$strata
    [ "$which" = baseline ] && binary=$baseline
    rm -rf "$work/store-$which"
    pull "$which-v1-r$round" "$binary" v1 "$work/store-$which"
    pull "$which-v2-r$round" "$binary" v2 "$work/store-$which"
  done
done
