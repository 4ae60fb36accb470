#!/usr/bin/env bash
# Figures for the registry transport (issue "Registry transport", not run by `make test`): the
# v1 -> v2 pair of `make run` (scripts/run-demo.sh builds both from this machine's shared
# libraries; STRATA_BENCH_MIB, default 200) as single-layer images, zstd:chunked (strata convert)
# and gzip, pushed to a docker-registry on loopback (tests/integration/registry_env.sh). Reports
# bytes on the wire for pulling v2 into a store holding v1 (chunked: only missing chunks) against
# the whole v2 layer and against the gzip pull of v2, and wall time of strata push / pull against
# `skopeo copy` of the same images to / from the same registry (skopeo into an oci: directory;
# strata's pull also verifies and ingests into its chunk store). One run, numbers printed.
# Usage: bench/registry_pull_compare.sh [PATH_TO_STRATA]
set -euo pipefail
strata=$(realpath "${1:-build/tools/strata}")
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=../tests/integration/registry_env.sh
. "$root/tests/integration/registry_env.sh"
registry_env_require docker-registry skopeo curl python3 zstd tar
registry_env_init strata-bench-registry
mib=${STRATA_BENCH_MIB:-200}

echo "== v1/v2 from scripts/run-demo.sh (STRATA_DEMO_MIB=$mib)" >&2
STRATA_DEMO_MIB=$mib "$root/scripts/run-demo.sh" "$strata" "$work/demo" >"$work/demo.log" 2>&1
for version in v1 v2; do
  "$strata" build "$work/demo/$version" --layout "$work/gz" --tag "$version" --format gzip >/dev/null
  "$strata" convert "$work/gz:$version" --to zstd:chunked --layout "$work/zc" --tag "$version" >/dev/null
done
layer_size() {  # LAYOUT TAG
  python3 - "$1" "$2" <<'PY'
import json, sys
root, tag = sys.argv[1:3]
index = json.load(open(f"{root}/index.json"))
desc = [m for m in index["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] == tag][0]
print(json.load(open(f"{root}/blobs/sha256/{desc['digest'][7:]}"))["layers"][0]["size"])
PY
}

start_registry bench
reg="127.0.0.1:$port"
timed() {  # NAME COMMAND...: runs it, keeps its wall seconds in $work/NAME.s
  local t0 t1
  t0=$(now)
  "${@:2}"
  t1=$(now)
  elapsed "$t0" "$t1" >"$work/$1.s"
}
secs() { cat "$work/$1.s"; }

echo "== push" >&2
for version in v1 v2; do
  timed "strata-push-$version" "$strata" push "$work/zc:$version" "$reg/bench/strata:$version" --insecure --json \
    >"$work/push-$version.json"
  timed "skopeo-push-$version" skopeo --insecure-policy copy --quiet --dest-tls-verify=false \
    "oci:$work/zc:$version" "docker://$reg/bench/skopeo:$version"
  "$strata" push "$work/gz:$version" "$reg/bench/gzip:$version" --insecure >/dev/null
done

echo "== pull" >&2
timed strata-pull-v1 "$strata" pull "$reg/bench/strata:v1" --store "$work/store" --insecure --json >"$work/pull-v1.json"
timed strata-pull-v2 "$strata" pull "$reg/bench/strata:v2" --store "$work/store" --insecure --json >"$work/pull-v2.json"
timed skopeo-pull-v1 skopeo --insecure-policy copy --quiet --src-tls-verify=false \
  "docker://$reg/bench/skopeo:v1" "oci:$work/skopeo-out:v1"
timed skopeo-pull-v2 skopeo --insecure-policy copy --quiet --src-tls-verify=false \
  "docker://$reg/bench/skopeo:v2" "oci:$work/skopeo-out:v2"
"$strata" pull "$reg/bench/gzip:v1" --store "$work/store-gz" --insecure --json >"$work/gz-v1.json"
timed strata-pull-gz-v2 "$strata" pull "$reg/bench/gzip:v2" --store "$work/store-gz" --insecure --json >"$work/gz-v2.json"

v2_chunked=$(layer_size "$work/zc" v2)
v2_gzip=$(layer_size "$work/gz" v2)
wire_v2=$(json_field "$work/pull-v2.json" 'd["bytes_fetched"]')
wire_v1=$(json_field "$work/pull-v1.json" 'd["bytes_fetched"]')
wire_gz=$(json_field "$work/gz-v2.json" 'd["bytes_fetched"]')
python3 - "$v2_chunked" "$v2_gzip" "$wire_v1" "$wire_v2" "$wire_gz" "$(json_field "$work/pull-v2.json" 'd["layers"][0]')" <<'PY'
import ast, sys
v2_chunked, v2_gzip, wire_v1, wire_v2, wire_gz = map(int, sys.argv[1:6])
layer = ast.literal_eval(sys.argv[6])
mib = lambda n: f"{n / 2**20:9.2f} MiB"
print(f"v2 zstd:chunked layer:                 {mib(v2_chunked)}")
print(f"v2 gzip layer:                         {mib(v2_gzip)}")
print(f"wire, pull v1 into an empty store:     {mib(wire_v1)}")
print(f"wire, pull v2 with v1 in the store:    {mib(wire_v2)}  ({100 * wire_v2 / v2_chunked:.1f}% of the v2 layer,"
      f" {100 * wire_v2 / wire_gz:.1f}% of the gzip pull; chunks {layer['chunks_local']} local / {layer['chunks_fetched']} fetched)")
print(f"wire, gzip pull of v2 (v1 in store):   {mib(wire_gz)}")
PY
echo "wall seconds (same registry, same run; strata pull = fetch + verify + ingest into its store):"
echo "  push v1: strata $(secs strata-push-v1)  skopeo copy $(secs skopeo-push-v1)"
echo "  push v2: strata $(secs strata-push-v2)  skopeo copy $(secs skopeo-push-v2)"
echo "  pull v1: strata $(secs strata-pull-v1)  skopeo copy $(secs skopeo-pull-v1)  (empty store / empty oci dir)"
echo "  pull v2: strata $(secs strata-pull-v2)  skopeo copy $(secs skopeo-pull-v2)  (v1 present; skopeo fetches the whole layer)"
echo "  pull v2 gzip image into a warm store: strata $(secs strata-pull-gz-v2)"
