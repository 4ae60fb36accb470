#!/usr/bin/env bash
# Deltas over the wire (issue 16, docs/DELTA.md) on a real update pair: the Debian packages of
# bench/delta_debian.sh (two archive versions each, `apt-get download`), v1.tar and v2.tar of
# their extracted contents. A pusher store ingests v1, then v2 with --delta-base auto; both are
# built as zstd:chunked images from that store and pushed to a docker-registry on loopback
# (tests/integration/registry_env.sh), v2 with its delta referrer (--delta-store). A client
# holding v1 (pulled from the registry) pulls v2 into two copies of its store: with the referrer,
# and with --no-deltas. Prints bytes on the wire for each against v2 as a `zstd -3 -T2` layer and
# the byte-delta floor `zstd -19 --long=29 --patch-from=v1.tar v2.tar`, where the bytes go (TOC
# and tar-split, delta frames, chunks fetched whole, referrer manifest and index, HTTP), pull
# wall time and peak RSS (/usr/bin/time), and checks both pulls export v2.tar byte-identical and
# verify clean. One run. Usage:
#   bench/delta_wire.sh [PATH_TO_STRATA] [WORK_DIR]
# STRATA_DELTA_PACKAGES overrides the package list; STRATA_BENCH_THREADS (2) the threads;
# STRATA_DELTA_LEVEL (19) the push's --delta-level (0: the store's delta frames as they are).
set -euo pipefail
tool=$(realpath "${1:-build/tools/strata}")
root=$(cd "$(dirname "$0")/.." && pwd)
threads=${STRATA_BENCH_THREADS:-2}
delta_level=${STRATA_DELTA_LEVEL:-19}
packages=${STRATA_DELTA_PACKAGES:-"libssl3 openssl libxml2 libcurl4 curl git libc6 libsystemd0 perl-base"}
# shellcheck source=../tests/integration/registry_env.sh
. "$root/tests/integration/registry_env.sh"
registry_env_require apt-get apt-cache dpkg-deb zstd python3 tar cmp docker-registry curl
[ -x /usr/bin/time ] || { echo "missing /usr/bin/time" >&2; exit 1; }
keep=${2:-}
registry_env_init strata-delta-wire

# shellcheck source=bench/debian_pair.sh
source "$(dirname "$0")/debian_pair.sh"
# shellcheck disable=SC2086 # the package list is split on purpose
make_debian_pair $packages

echo "== zstd -3 and the --patch-from floor" >&2
/usr/bin/time -f '%e %M' -o "$work/zstd3.time" \
  zstd -q -3 -T"$threads" -f "$work/v2.tar" -o "$work/v2.tar.zst"
zstd -q -19 --long=29 -T"$threads" --patch-from="$work/v1.tar" -f "$work/v2.tar" \
  -o "$work/v2.patch.zst"

echo "== pusher: store, images, registry" >&2
pusher="$work/pusher" layout="$work/layout"
"$tool" ingest --threads "$threads" --store "$pusher" "$work/v1.tar" >/dev/null
"$tool" build "$work/v1.tar" --format zstd:chunked --store "$pusher" --layout "$layout" --tag v1 >/dev/null
/usr/bin/time -f '%e %M' -o "$work/ingest.time" \
  "$tool" ingest --json --threads "$threads" --delta-base auto --store "$pusher" "$work/v2.tar" \
  >"$work/ingest-v2.json"
"$tool" build "$work/v2.tar" --format zstd:chunked --store "$pusher" --layout "$layout" --tag v2 >/dev/null
start_registry bench
reg="127.0.0.1:$port"
"$tool" push "$layout:v1" "$reg/bench/debian:v1" --insecure >/dev/null
/usr/bin/time -f '%e %M' -o "$work/push.time" \
  "$tool" push "$layout:v2" "$reg/bench/debian:v2" --insecure --delta-store "$pusher" --json \
  --delta-level "$delta_level" >"$work/push-v2.json"

echo "== receiver: v1, then v2 with and without deltas" >&2
"$tool" pull "$reg/bench/debian:v1" --store "$work/with" --insecure >/dev/null
cp -a "$work/with" "$work/without"
/usr/bin/time -f '%e %M' -o "$work/with.time" \
  "$tool" pull "$reg/bench/debian:v2" --store "$work/with" --insecure --json >"$work/with.json"
/usr/bin/time -f '%e %M' -o "$work/without.time" \
  "$tool" pull "$reg/bench/debian:v2" --store "$work/without" --insecure --json --no-deltas \
  >"$work/without.json"
diff_id=$(json_field "$work/with.json" 'd["layers"][0]["diff_id"]')
for mode in with without; do
  "$tool" verify --store "$work/$mode" >/dev/null
  "$tool" export --store "$work/$mode" -o "$work/$mode.tar" "$diff_id"
  cmp "$work/$mode.tar" "$work/v2.tar"
  rm -f "$work/$mode.tar"
done

python3 - "$work" "$threads" "${used[@]}" <<'PY'
import json, os, sys
work, threads, used = sys.argv[1], sys.argv[2], sys.argv[3:]
size = lambda name: os.path.getsize(f"{work}/{name}")
tar1, tar2, zstd3, floor = size("v1.tar"), size("v2.tar"), size("v2.tar.zst"), size("v2.patch.zst")
push = json.load(open(f"{work}/push-v2.json"))["delta_referrer"]
ingest = json.load(open(f"{work}/ingest-v2.json"))
ingest = ingest[0] if isinstance(ingest, list) else ingest
print("packages: " + "; ".join(used))
print(f"v1.tar {tar1 / 1e6:.1f} MB, v2.tar {tar2 / 1e6:.1f} MB; one run")
print(f"pusher store: {ingest['delta_chunks']} of {ingest['new_chunks']} new v2 chunks stored as deltas; "
      f"referrer ships {push['delta_chunks']} of {push['chunks']} chunks, frames {push['frames_bytes'] / 1e6:.2f} MB "
      f"for {push['delta_raw_bytes'] / 1e6:.2f} MB of chunks, index {push['index_bytes'] / 1e6:.3f} MB")
seconds = lambda name: float(open(f"{work}/{name}.time").read().split()[0])
print(f"v2 ingest --delta-base auto {seconds('ingest'):.2f} s vs zstd -3 -T{threads} {seconds('zstd3'):.2f} s "
      f"(speed {seconds('zstd3') / seconds('ingest'):.2f}x zstd's); push with the referrer {seconds('push'):.2f} s")
print(f"{'v2 for a v1 holder':<44}{'MB':>9}{'vs zstd -3':>12}{'vs floor':>10}")
def row(name, n):
    print(f"{name:<44}{n / 1e6:9.2f}{n / zstd3:12.3f}{n / floor:10.2f}")
row(f"v2.tar as zstd -3 -T{threads}", zstd3)
row("floor: zstd -19 --long=29 --patch-from", floor)
for mode in ("without", "with"):
    report = json.load(open(f"{work}/{mode}.json"))
    secs, rss = open(f"{work}/{mode}.time").read().split()
    row(f"strata pull, {mode} deltas (wire)", report["bytes_fetched"])
    layer = report["layers"][0]
    meta = layer.get("metadata_bytes", 0)
    deltas = layer["delta_bytes_fetched"]
    whole = layer["bytes_fetched"] - meta - deltas
    referrer = report["deltas"]["referrer_bytes"]
    other = report["bytes_fetched"] - layer["bytes_fetched"] - referrer
    print(f"    TOC+tar-split {meta / 1e6:.2f} MB, chunks whole {whole / 1e6:.2f} MB "
          f"({layer['chunks_fetched'] - layer['delta_chunks']} chunks), delta frames {deltas / 1e6:.2f} MB "
          f"({layer['delta_chunks']} chunks, {layer['delta_fallbacks']} fell back, "
          f"{layer.get('repeat_chunks', 0)} repeats reused), referrer {referrer / 1e6:.3f} MB, "
          f"manifest/config/HTTP {other / 1e6:.3f} MB; {float(secs):.2f} s, peak RSS {int(rss) / 1024:.0f} MiB")
    if mode == "with":
        print(f"    the pull's own estimate without deltas: {report['bytes_fetched_without_deltas'] / 1e6:.2f} MB")
PY
if [ -n "$keep" ]; then mkdir -p "$keep" && cp "$work"/*.json "$work"/*.time "$keep"/; fi
