#!/usr/bin/env bash
# Side-by-side layer conversion benchmark (issues "OCI images" and "Fast pulls"): one gzip layer of
# this machine's files (default 1 GiB of tar, zlib level 6 like docker's layers) in an OCI layout,
# converted in one run by
#   strata convert gzip -> zstd, zstd -> gzip, gzip -> zstd:chunked   (each with a fresh store,
#                                                                       so ingest is included)
#   skopeo copy --dest-compress-format zstd / gzip / zstd:chunked      (oci: layout to oci: layout)
#   gzip -d | zstd -3 -T2   and   zstd -d | gzip                      (plain pipelines, same blobs)
# MB/s are of the uncompressed tar; ratios are strata over the others (wall clock). CPU seconds
# and peak RSS come from /usr/bin/time (CPU time is the steadier figure on a shared machine). Set STRATA_BENCH_BASELINE=/path/to/an/older/strata to measure its convert too.
# Usage: bench/convert_compare.sh [PATH_TO_STRATA] [WORK_DIR]   (STRATA_BENCH_MIB=1024 by default)
# Not run by `make test`: it takes minutes and needs about 4 x the layer size of disk.
set -euo pipefail
tool=$(realpath "${1:-build/tools/strata}")
work=${2:-build/bench-convert}
size_mib=${STRATA_BENCH_MIB:-1024}
for needed in skopeo zstd gzip /usr/bin/time python3 tar; do
  command -v "$needed" >/dev/null || { echo "missing $needed (scripts/install-deps.sh)" >&2; exit 1; }
done
rm -rf "$work" && mkdir -p "$work/root"
work=$(realpath "$work")

echo "== building a ${size_mib} MiB layer of this machine's files" >&2
find /usr/lib /usr/share /usr/bin -type f -size +16k -printf '%s %p\n' 2>/dev/null | sort -k2 |
  awk -v cap=$((size_mib << 20)) '{ if (total + $1 <= cap) { total += $1; print $2 } }' >"$work/files.txt"
tar --files-from="$work/files.txt" -cf - 2>/dev/null | tar -C "$work/root" -xf -
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 --format=pax \
  --pax-option=delete=atime,delete=ctime -C "$work/root" -cf "$work/layer.tar" .
rm -rf "${work:?}/root"
"$tool" build "$work/layer.tar" --layout "$work/src" --tag v1 --format gzip-zlib >/dev/null
rm -f "$work/layer.tar"
blob_of() {  # layout, tag -> path of the first layer blob
  python3 - "$1" "$2" <<'PY'
import json, sys
layout, tag = sys.argv[1], sys.argv[2]
index = json.load(open(f"{layout}/index.json"))
m = next(d for d in index["manifests"] if d.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag)
manifest = json.load(open(f"{layout}/blobs/{m['digest'].replace(':', '/')}"))
print(f"{layout}/blobs/{manifest['layers'][0]['digest'].replace(':', '/')}")
PY
}
gzip_blob=$(blob_of "$work/src" v1)
tar_bytes=$(gzip -dc "$gzip_blob" | wc -c)

measure() {  # label, command...: runs it under /usr/bin/time, records "seconds peak_kib cpu_s"
  local label=$1; shift
  sync
  /usr/bin/time -f '%e %M %U %S' -o "$work/$label.time" "$@" >"$work/$label.out" 2>"$work/$label.err" ||
    { echo "$label failed:" >&2; cat "$work/$label.err" >&2; exit 1; }
  echo "$label $(cat "$work/$label.time")" >>"$work/results.txt"
}
convert() {  # label, from-layout, to, out-layout, [strata binary], [more convert options]
  local binary=${5:-$tool}
  rm -rf "$work/store-$1"
  measure "$1" "$binary" convert "$2:v1" --to "$3" --layout "$4" --tag v1 --store "$work/store-$1" \
    "${@:6}"
  rm -rf "$work/store-$1"
}
# The registry case: the store already holds the layer's chunks (here from a zstd:chunked convert
# that is not measured), so the measured convert ingests without compressing anything.
convert_warm() {  # label, from-layout, to, out-layout, [more convert options]
  rm -rf "$work/store-$1"
  "$tool" convert "$2:v1" --to zstd:chunked --layout "$work/warmup-$1" --tag v1 \
    --store "$work/store-$1" >/dev/null
  rm -rf "$work/warmup-$1"
  measure "$1" "$tool" convert "$2:v1" --to "$3" --layout "$4" --tag v1 --store "$work/store-$1" \
    "${@:5}"
  rm -rf "$work/store-$1"
}
skopeo_copy() {  # label, from-layout, format, out-layout
  measure "$1" skopeo --insecure-policy copy --quiet --dest-compress-format "$3" "oci:$2:v1" "oci:$4:v1"
}
: >"$work/results.txt"
echo "== strata convert" >&2
convert strata-gzip-to-zstd "$work/src" zstd "$work/strata-zstd"
convert strata-zstd-to-gzip "$work/strata-zstd" gzip "$work/strata-gzip"
convert strata-gzip-to-zstd-chunked "$work/src" zstd:chunked "$work/strata-chunked"
convert strata-gzip-to-zstd-frames "$work/src" zstd "$work/strata-zstd-frames" "" --store-frames
convert_warm strata-warm-gzip-to-zstd-frames "$work/src" zstd "$work/strata-zstd-warm" --store-frames
convert_warm strata-warm-gzip-to-zstd-chunked "$work/src" zstd:chunked "$work/strata-chunked-warm"
convert_warm strata-warm-gzip-to-zstd "$work/src" zstd "$work/strata-zstd-warm-plain"
if [[ -n "${STRATA_BENCH_BASELINE:-}" ]]; then
  convert baseline-gzip-to-zstd "$work/src" zstd "$work/baseline-zstd" "$STRATA_BENCH_BASELINE"
  convert baseline-gzip-to-zstd-chunked "$work/src" zstd:chunked "$work/baseline-chunked" \
    "$STRATA_BENCH_BASELINE"
fi
echo "== skopeo copy" >&2
skopeo_copy skopeo-gzip-to-zstd "$work/src" zstd "$work/skopeo-zstd"
skopeo_copy skopeo-zstd-to-gzip "$work/skopeo-zstd" gzip "$work/skopeo-gzip"
skopeo_copy skopeo-gzip-to-zstd-chunked "$work/src" zstd:chunked "$work/skopeo-chunked"
echo "== pipelines" >&2
zstd_blob=$(blob_of "$work/strata-zstd" v1)
measure pipe-gzip-to-zstd sh -c "gzip -dc '$gzip_blob' | zstd -3 -T2 -q -c > '$work/pipe.zst'"
measure pipe-zstd-to-gzip sh -c "zstd -dc '$zstd_blob' | gzip -c > '$work/pipe.gz'"

python3 - "$work/results.txt" "$tar_bytes" "$gzip_blob" <<'PY'
import os, sys
rows = {}
for line in open(sys.argv[1]):
    label, seconds, kib, user, system = line.split()
    rows[label] = (float(seconds), int(kib), float(user) + float(system))
tar_bytes = int(sys.argv[2])
print(f"layer: {tar_bytes / 2**20:.0f} MiB of tar, gzip blob {os.path.getsize(sys.argv[3]) / 2**20:.0f} MiB")
print(f"{'run':<32} {'seconds':>8} {'MB/s':>8} {'CPU s':>8} {'peak RSS MiB':>13}")
for label, (seconds, kib, cpu) in rows.items():
    print(f"{label:<32} {seconds:>8.1f} {tar_bytes / 1e6 / max(seconds, 1e-3):>8.1f} {cpu:>8.1f} {kib / 1024:>13.0f}")
def ratio(a, b):
    if a in rows and b in rows:
        print(f"speed {a} / {b}: {rows[b][0] / max(rows[a][0], 1e-3):.2f}x")
for direction in ("gzip-to-zstd", "zstd-to-gzip", "gzip-to-zstd-chunked"):
    ratio(f"strata-{direction}", f"skopeo-{direction}")
    ratio(f"strata-{direction}", f"pipe-{direction}")
    ratio(f"strata-{direction}", f"baseline-{direction}")
for label in ("strata-gzip-to-zstd-frames", "strata-warm-gzip-to-zstd-frames"):
    ratio(label, "skopeo-gzip-to-zstd")
    ratio(label, "pipe-gzip-to-zstd")
ratio("strata-warm-gzip-to-zstd-chunked", "skopeo-gzip-to-zstd-chunked")
ratio("strata-warm-gzip-to-zstd", "skopeo-gzip-to-zstd")
# Issue "Fast pulls": zstd:chunked made faster than skopeo's plain gzip -> zstd.
ratio("strata-gzip-to-zstd-chunked", "skopeo-gzip-to-zstd")
ratio("strata-warm-gzip-to-zstd-chunked", "skopeo-gzip-to-zstd")
sizes = {}
for label, layout in (("strata zstd (whole stream)", "strata-zstd"),
                      ("strata zstd --store-frames", "strata-zstd-frames"),
                      ("skopeo zstd", "skopeo-zstd")):
    blobs = os.path.join(os.path.dirname(sys.argv[1]), layout, "blobs", "sha256")
    if os.path.isdir(blobs):
        sizes[label] = max(os.path.getsize(os.path.join(blobs, b)) for b in os.listdir(blobs))
for label, size in sizes.items():
    print(f"layer blob size, {label}: {size / 2**20:.1f} MiB")
PY
