#!/usr/bin/env bash
# Delta transfer on a real update pair (issue 16, DESIGN.md §7): downloads two versions of a few
# Debian packages (`apt-get download`, the two newest versions `apt-cache madison` lists), builds
# v1.tar and v2.tar of their extracted contents (as layers would hold them), ingests v1 then v2
# into a strata store without and with --delta-base, and prints v2's store growth next to
# `zstd -3 -T2` of v2.tar and the byte-delta floor `zstd -19 --long=29 --patch-from=v1.tar v2.tar`,
# and `casync make` store growth (same chunk sizes, zstd), as ratios, plus v2's ingest time against
# `zstd -3 -T2`. Every store is verified and v2 exported
# and compared with v2.tar. Usage:
#   bench/delta_debian.sh [PATH_TO_STRATA] [WORK_DIR]
# STRATA_DELTA_PACKAGES overrides the package list; STRATA_BENCH_THREADS (2) the threads.
set -euo pipefail
tool=$(realpath "${1:-build/tools/strata}")
work=${2:-build/bench-delta}
threads=${STRATA_BENCH_THREADS:-2}
packages=${STRATA_DELTA_PACKAGES:-"libssl3 openssl libxml2 libcurl4 curl git libc6 libsystemd0 perl-base"}
for needed in apt-get apt-cache dpkg-deb zstd casync /usr/bin/time python3 tar cmp; do
  command -v "$needed" >/dev/null || { echo "missing $needed" >&2; exit 1; }
done
rm -rf "$work" && mkdir -p "$work"
work=$(realpath "$work")

# shellcheck source=bench/debian_pair.sh
source "$(dirname "$0")/debian_pair.sh"
# shellcheck disable=SC2086 # the package list is split on purpose
make_debian_pair $packages

measure() {  # label, command...: "seconds peak_kib" into $work/$label.time
  local label=$1; shift
  /usr/bin/time -f '%e %M' -o "$work/$label.time" "$@" >"$work/$label.out" 2>"$work/$label.err"
}
sync
measure zstd3 zstd -q -3 -T"$threads" -f "$work/v2.tar" -o "$work/v2.tar.zst"
measure floor zstd -q -19 --long=29 -T"$threads" --patch-from="$work/v1.tar" -f "$work/v2.tar" \
  -o "$work/v2.patch.zst"
# casync's store growth: the chunk files v2 adds to a store holding v1 (the same min/avg/max sizes).
mkdir -p "$work/castore"
casync_bytes() {
  find "$work/castore" -type f -name '*.cacnk' -printf '%s\n' | awk '{s += $1} END {print s + 0}'
}
for version in v1 v2; do
  measure "casync_$version" casync make --compression=zstd --chunk-size=16384:65536:262144 \
    --store="$work/castore" "$work/$version.caibx" "$work/$version.tar"
  casync_bytes >"$work/casync_$version.bytes"
done
for mode in plain delta; do
  "$tool" ingest --json --threads "$threads" --store "$work/store-$mode" "$work/v1.tar" \
    >"$work/v1-$mode.json"
  extra=()
  [ "$mode" = delta ] && extra=(--delta-base auto)
  measure "ingest_$mode" "$tool" ingest --json --threads "$threads" "${extra[@]}" \
    --store "$work/store-$mode" "$work/v2.tar"
  "$tool" verify --store "$work/store-$mode" >"$work/verify-$mode.out"
  diff_id=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print((d[0] if isinstance(d, list) else d)["diff_id"])' \
    "$work/ingest_$mode.out")
  "$tool" export --store "$work/store-$mode" -o "$work/v2-$mode.tar" "$diff_id"
  cmp "$work/v2-$mode.tar" "$work/v2.tar"
  rm -f "$work/v2-$mode.tar"
done

python3 - "$work" "$threads" "${used[@]}" <<'PY'
import json, os, sys
work, threads, used = sys.argv[1], sys.argv[2], sys.argv[3:]
def seconds(label):
    return float(open(f"{work}/{label}.time").read().split()[-2])
tar1, tar2 = (os.path.getsize(f"{work}/{v}.tar") for v in ("v1", "v2"))
zstd3 = os.path.getsize(f"{work}/v2.tar.zst")
floor = os.path.getsize(f"{work}/v2.patch.zst")
print("packages: " + "; ".join(used))
print(f"v1.tar {tar1 / 1e6:.1f} MB, v2.tar {tar2 / 1e6:.1f} MB; {threads} threads; one run")
print(f"{'v2 as':<34}{'MB':>9}{'vs zstd -3':>12}{'vs floor':>10}{'seconds':>9}{'speed vs zstd -3':>18}")
def row(name, size, label):
    secs = seconds(label)
    speed = seconds("zstd3") / secs if label else float("nan")
    print(f"{name:<34}{size / 1e6:9.2f}{size / zstd3:12.3f}{size / floor:10.2f}{secs:9.2f}{speed:17.2f}x")
row("zstd -3 -T" + threads + " of v2.tar", zstd3, "zstd3")
row("floor: zstd -19 --long --patch-from", floor, "floor")
casync = [int(open(f"{work}/casync_{v}.bytes").read()) for v in ("v1", "v2")]
row("casync store growth", casync[1] - casync[0], "casync_v2")
for mode in ("plain", "delta"):
    report = json.load(open(f"{work}/ingest_{mode}.out"))
    report = report[0] if isinstance(report, list) else report
    growth = report["new_stored_bytes"] + report["recipe_bytes"]
    row(f"strata store growth ({mode})", growth, f"ingest_{mode}")
    if mode == "delta":
        print(f"  delta chunks {report['delta_chunks']} of {report['new_chunks']} new, "
              f"{report['delta_stored_bytes'] / 1e6:.2f} MB stored as deltas")
PY
