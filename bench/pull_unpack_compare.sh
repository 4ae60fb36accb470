#!/usr/bin/env bash
# `strata pull --unpack DIR` (issue 17: a runnable tree rather than a store) against what users
# run today for the same result: `skopeo copy` into an oci: layout, then the layer extracted with
# `tar --zstd -x` (Debian 12's umoci 0.4.7 reads no tar+zstd layer, and skopeo 1.9's
# --dest-decompress leaves zstd layers as they are). The images are the v1 -> v2 pair of `make run`
# (scripts/run-demo.sh), built as zstd:chunked by strata and pushed to a docker-registry on
# loopback (no link limit), as in bench/pull_compare.sh. Back to back, one run each:
#   v1 into nothing   strata pull --unpack (scratch store)          vs skopeo copy + tar -x
#   v2 holding v1     strata pull --store (copy of v1's) --unpack   vs skopeo copy + tar -x
# (the images have one layer: no whiteouts for tar to miss), and strata pull without --unpack, to
# show what the unpack adds. Printed: wall seconds, the ratio (the other's s / strata's s: above
# 1.0 strata is faster), peak RSS, and the unpack's own stages.
# Usage: bench/pull_unpack_compare.sh [PATH_TO_STRATA]
#   STRATA_BENCH_DEMO   a directory with v1/ and v2/ from an earlier scripts/run-demo.sh (skips it)
set -euo pipefail
strata=$(realpath "${1:-build/tools/strata}")
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=../tests/integration/registry_env.sh
. "$root/tests/integration/registry_env.sh"
registry_env_require docker-registry skopeo python3 /usr/bin/time
registry_env_init strata-pull-unpack

demo=${STRATA_BENCH_DEMO:-}
if [ -z "$demo" ]; then
  echo "== v1/v2 from scripts/run-demo.sh" >&2
  demo=$work/demo
  "$root/scripts/run-demo.sh" "$strata" "$demo" >"$work/demo.log" 2>&1
fi
for version in v1 v2; do
  "$strata" build "$demo/$version" --layout "$work/gz" --tag "$version" --format gzip >/dev/null
  "$strata" convert "$work/gz:$version" --to zstd:chunked --layout "$work/zc" --tag "$version" \
    >/dev/null
done
start_registry bench
endpoint=127.0.0.1:$port
for version in v1 v2; do
  "$strata" push "$work/zc:$version" "$endpoint/bench/image:$version" --insecure >/dev/null
done
"$strata" pull "$endpoint/bench/image:v1" --store "$work/store-v1" --insecure >/dev/null

measure() {  # NAME COMMAND...: wall s and peak RSS KiB into $work/NAME.time
  /usr/bin/time -f "%e %M" -o "$work/$1.time" "${@:2}" >"$work/$1.out"
}
skopeo_tar() {  # VERSION OUT: skopeo copy as is, then tar -x of the (single) layer at OUT/rootfs
  mkdir -p "$2/rootfs"
  skopeo --insecure-policy copy --quiet --src-tls-verify=false \
    "docker://$endpoint/bench/image:$1" "oci:$2/layout:$1"
  local manifest layer
  manifest=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"][7:])' "$2/layout/index.json")
  layer=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["layers"][0]["digest"][7:])' "$2/layout/blobs/sha256/$manifest")
  tar --zstd -xf "$2/layout/blobs/sha256/$layer" -C "$2/rootfs"
}
fresh_v1_store() { rm -rf "$work/s2" && cp -a "$work/store-v1" "$work/s2"; }

others() {  # VERSION: skopeo copy + tar -x into $work/t-VERSION
  rm -rf "$work/t-$1"
  measure "tar-$1" bash -c "$(declare -f skopeo_tar); endpoint=$endpoint; skopeo_tar $1 $work/t-$1"
}
rm -rf "$work/r1"
measure strata-v1 "$strata" pull "$endpoint/bench/image:v1" --unpack "$work/r1" --insecure --json
others v1
fresh_v1_store
measure pull-only-v2 "$strata" pull "$endpoint/bench/image:v2" --store "$work/s2" --insecure --json
fresh_v1_store
rm -rf "$work/r2"
measure strata-v2 "$strata" pull "$endpoint/bench/image:v2" --store "$work/s2" \
  --unpack "$work/r2" --insecure --json
others v2
# The trees must be the same files.
diff -r --no-dereference "$work/r2" "$work/t-v2/rootfs" >/dev/null || echo "WARNING: tar's v2 tree differs" >&2

python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
def t(name):
    wall, rss = open(f"{work}/{name}.time").read().split()[:2]
    return float(wall), float(rss) / 1024
print("| pull | strata pull --unpack s | skopeo copy + tar -x s | ratio | strata / skopeo+tar"
      " peak RSS | strata unpack_s / tail_s |")
print("|---|---|---|---|---|---|")
for version, what in (("v1", "v1 into nothing"), ("v2", "v2 holding v1")):
    (s, s_rss), (x, x_rss) = (t(f"{n}-{version}") for n in ("strata", "tar"))
    st = json.load(open(f"{work}/strata-{version}.out"))["unpack"]["stages"]
    print(f"| {what} | {s:.2f} | {x:.2f} | {x / s:.2f}x | {s_rss:.0f} / {x_rss:.0f} MiB |"
          f" {st['unpack_s']:.2f} / {st['tail_s']:.2f} |")
print(f"\nstrata pull of v2 holding v1 without --unpack: {t('pull-only-v2')[0]:.2f} s")
PY
