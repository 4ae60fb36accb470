#!/usr/bin/env bash
# Issue 17's figures (not run by `make test`): strata pull against `skopeo copy` (and `podman pull`
# where podman is installed) at several link speeds, on loopback only. The images are the
# v1 -> v2 pair of `make run` (scripts/run-demo.sh: a Python ML layer, v2 the CPython security
# update), single-layer zstd:chunked images written by strata, pushed to a docker-registry on
# loopback (tests/integration/registry_env.sh). A link speed other than "unlimited" is a tc
# token-bucket filter on the loopback of a network namespace the bench runs in, or where that is
# not possible bench/rate_limit_proxy.py between the clients and the registry (bench/link_env.sh;
# the report says which). For each speed, back to back:
#   v1 into an empty store   strata pull (empty store)         vs skopeo copy into an empty oci: dir
#   v2 holding v1            strata pull (store holding v1)    vs skopeo copy of v2 (whole layer)
# Printed per run: wall seconds, strata's speed as a ratio of skopeo's (skopeo s / strata s; above
# 1.0 strata is faster), peak RSS, CPU seconds per GB of layer tar, bytes on the wire, and where
# strata's time went (the `stages` of `strata pull --json`, seconds).
# Usage: bench/pull_compare.sh [PATH_TO_STRATA [BASELINE_STRATA]]
#   With a baseline, its pulls run right after strata's, against the same registry and links, and
#   a second table gives its figures (same sitting: the ratios compare).
#   STRATA_BENCH_SPEEDS   link speeds, bits/s with k/M/G, or "unlimited" (default "100M 1G unlimited")
#   STRATA_BENCH_DEMO     a directory with v1/ and v2/ from an earlier scripts/run-demo.sh (skips it)
#   STRATA_BENCH_LINK     netns (default where possible) or proxy: how a speed is made (link_env.sh)
set -euo pipefail
strata=$(realpath "${1:-build/tools/strata}")
baseline=${2:+$(realpath "$2")}
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=link_env.sh
. "$root/bench/link_env.sh"
link_env_enter "$0" "$@"
# shellcheck source=../tests/integration/registry_env.sh
. "$root/tests/integration/registry_env.sh"
registry_env_require docker-registry skopeo curl python3 /usr/bin/time
registry_env_init strata-pull-compare
speeds=${STRATA_BENCH_SPEEDS:-100M 1G unlimited}

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
tar_bytes() { du -sb --apparent-size "$demo/$1" | cut -f1; }

start_registry bench
registry_port=$port
for version in v1 v2; do
  "$strata" push "$work/zc:$version" "127.0.0.1:$registry_port/bench/image:$version" --insecure \
    >/dev/null
done
# The store holding v1 that every v2 pull starts from (a copy each time), one per binary.
tools=(strata)
"$strata" pull "127.0.0.1:$registry_port/bench/image:v1" --store "$work/store-v1-strata" \
  --insecure >/dev/null
if [ -n "$baseline" ]; then
  tools+=(baseline)
  "$baseline" pull "127.0.0.1:$registry_port/bench/image:v1" --store "$work/store-v1-baseline" \
    --insecure >/dev/null
fi

measure() {  # NAME COMMAND...: wall s, peak RSS KiB, user s, system s into $work/NAME.time
  /usr/bin/time -f "%e %M %U %S" -o "$work/$1.time" "${@:2}" >"$work/$1.out"
}
field() { cut -d' ' -f"$2" "$work/$1.time"; }

have_podman=0
command -v podman >/dev/null && have_podman=1
results=$work/results.txt
: >"$results"
for speed in $speeds; do
  echo "== link $speed" >&2
  link_start "$speed" "$registry_port"
  # v1 into an empty store / empty oci: directory.
  for tool in "${tools[@]}"; do
    rm -rf "$work/s1"
    measure "$tool-v1-$speed" "${!tool}" pull "$endpoint/bench/image:v1" --store "$work/s1" \
      --insecure --json
  done
  rm -rf "$work/o1"
  measure "skopeo-v1-$speed" skopeo --insecure-policy copy --quiet --src-tls-verify=false \
    "docker://$endpoint/bench/image:v1" "oci:$work/o1:v1"
  # v2 into a store holding v1; skopeo fetches the whole v2 layer.
  for tool in "${tools[@]}"; do
    rm -rf "$work/s2"
    cp -a "$work/store-v1-$tool" "$work/s2"
    measure "$tool-v2-$speed" "${!tool}" pull "$endpoint/bench/image:v2" --store "$work/s2" \
      --insecure --json
  done
  rm -rf "$work/o2"
  measure "skopeo-v2-$speed" skopeo --insecure-policy copy --quiet --src-tls-verify=false \
    "docker://$endpoint/bench/image:v2" "oci:$work/o2:v2"
  if [ "$have_podman" = 1 ]; then
    # A fresh podman storage per link speed: v1 into empty, then v2 holding v1 (vfs storage pulls
    # whole layers; podman's partial pulls are bench/podman_partial.sh's).
    rm -rf "$work/podman-root" "$work/podman-run"
    for version in v1 v2; do
      measure "podman-$version-$speed" podman --root "$work/podman-root" --runroot \
        "$work/podman-run" --storage-driver vfs pull --tls-verify=false -q \
        "$endpoint/bench/image:$version"
    done
  fi
  link_stop
  for tool in "${tools[@]}"; do
    for version in v1 v2; do
      echo "$tool $speed $version $(tar_bytes "$version")" \
        "$(cat "$work/$tool-$version-$speed.time")" \
        "$(cat "$work/skopeo-$version-$speed.time")" \
        "$(if [ "$have_podman" = 1 ]; then field "podman-$version-$speed" 1; else echo -; fi)" \
        "$work/$tool-$version-$speed.out" >>"$results"
    done
  done
done

for tool in "${tools[@]}"; do
  echo
  echo "## $tool (${!tool})"
  echo
  echo "Link speeds made by: $(link_way) (bench/link_env.sh)."
  echo
  grep "^$tool " "$results" | cut -d' ' -f2- >"$work/results-$tool.txt"
  python3 - "$work/results-$tool.txt" <<'PY'
import json, sys
print("| link | pull | strata s | skopeo s | strata/skopeo speed | podman s | strata peak RSS | skopeo peak RSS"
      " | strata CPU s/GB | skopeo CPU s/GB | strata wire |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
stages = []
for line in open(sys.argv[1]):
    f = line.split()
    speed, version, tar = f[0], f[1], int(f[2])
    s_wall, s_rss, s_user, s_sys = map(float, f[3:7])
    k_wall, k_rss, k_user, k_sys = map(float, f[7:11])
    podman = f[11] if f[11] == "-" else f"{float(f[11]):.2f}"
    out = json.load(open(f[-1]))
    layer = out["layers"][0]
    gb = tar / 1e9
    what = "v1 into empty" if version == "v1" else "v2 holding v1"
    print(f"| {speed} | {what} | {s_wall:.2f} | {k_wall:.2f} | {k_wall / s_wall:.2f}x | {podman} |"
          f" {s_rss / 1024:.0f} MiB | {k_rss / 1024:.0f} MiB | {(s_user + s_sys) / gb:.2f} |"
          f" {(k_user + k_sys) / gb:.2f} | {out['bytes_fetched'] / 2**20:.1f} MiB |")
    stages.append((speed, what, layer.get("stages", {})))
print()
print("strata's stages (seconds; fetch and prepare run beside the rebuild thread):")
for speed, what, st in stages:
    print(f"  {speed:>9} {what:<14} " + " ".join(f"{k[:-2]}={v:.3f}" for k, v in st.items() if v))
PY
done
