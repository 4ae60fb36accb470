#!/usr/bin/env bash
# `strata model pull` against fetching the blob whole with curl from the same registry (issue 17,
# "Must show": a model pull of a fine-tune with the base held vs the whole blob; CPU seconds per
# GB, peak RSS, where the time goes). bench/delta_model.cpp writes a synthetic BF16 safetensors
# base, a full fine-tune (every tensor changed) and a partial one (PARTIAL tensors changed); one
# packaging store holds all three (fine-tunes with --delta-base auto), all are pushed to a
# docker-registry on loopback (tests/integration/registry_env.sh), the fine-tunes with their delta
# referrer. Then, one run each, same sitting: the base into an empty store (cold), and each
# fine-tune into a copy of that client store (base held), each against `curl -o` of the same blob
# and `curl | sha256sum` (a download that checks what it got, as strata does); every pulled file
# cmp-identical to the source and every client store verified clean. Stages come from
# `model pull --json` (docs/MODEL_ARTIFACTS.md: fetch-thread stages are summed over threads).
# Usage: bench/model_pull_compare.sh [BUILD_DIR]
#   MODEL_MIB (default 256) sets the base size, PARTIAL (default 4) the partial fine-tune,
#   PULL_FLAGS adds flags to every `strata model pull` (e.g. "--fetch-jobs 1"), STRATA_TOOL runs
#   another strata binary, STRATA_BENCH_SPEED (bits/s with k/M/G, default unlimited) puts
#   bench/rate_limit_proxy.py between the pulls (strata's and curl's alike) and the registry.
set -euo pipefail

build_dir=$(cd "${1:-build}" && pwd)
tool=${STRATA_TOOL:-$build_dir/tools/strata}  # STRATA_TOOL: another binary (a before/after run)
driver="$build_dir/bench/delta_model"
for binary in "$tool" "$driver"; do
  [[ -x "$binary" ]] || { echo "build $binary first (cmake --build $build_dir)" >&2; exit 1; }
done
mib=${MODEL_MIB:-256}
partial=${PARTIAL:-4}
read -r -a pull_flags <<<"${PULL_FLAGS:-}"
# shellcheck source=../tests/integration/registry_env.sh
. "$(cd "$(dirname "$0")/.." && pwd)/tests/integration/registry_env.sh"
registry_env_require docker-registry curl python3
registry_env_init strata-model-pull  # sets $work, removed on exit

mkdir -p "$work/base" "$work/full" "$work/partial"
"$driver" synth "$work/base/model.safetensors" 1 "$mib" >/dev/null
"$driver" finetune "$work/base/model.safetensors" "$work/full/model.safetensors" 2 full >/dev/null
"$driver" finetune "$work/base/model.safetensors" "$work/partial/model.safetensors" 3 \
  "partial:$partial" >/dev/null
size=$(stat -c %s "$work/base/model.safetensors")
echo "model: $size bytes BF16 safetensors; $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"

start_registry bench
reg="127.0.0.1:$port"
push_reg=$reg
speed=${STRATA_BENCH_SPEED:-unlimited}
if [[ $speed != unlimited ]]; then
  rate=$(python3 -c "import sys; s=sys.argv[1]; m={'k':1e3,'M':1e6,'G':1e9}; print(int(float(s[:-1])*m[s[-1]]) if s[-1] in m else int(s))" "$speed")
  python3 "$(dirname "$0")/rate_limit_proxy.py" "$port" "$rate" "$work/link.port" &
  registry_env_pids+=("$!")
  for _ in $(seq 1 100); do [[ -s $work/link.port ]] && break; sleep 0.1; done
  reg="127.0.0.1:$(cat "$work/link.port")"
fi
echo "link: $speed"
pack="$work/pack-store"
for model in base full partial; do
  flags=()
  [[ $model != base ]] && flags=(--delta-base auto)
  "$tool" model package "$work/$model" --layout "$work/layout-$model" --tag v --store "$pack" \
    "${flags[@]}" >/dev/null
  push_flags=()
  [[ $model != base ]] && push_flags=(--delta-store "$pack")
  "$tool" model push "$work/layout-$model:v" "$push_reg/bench/model:$model" --insecure \
    "${push_flags[@]}" >/dev/null
done

# strata_pull NAME TAG STORE: time -> $work/NAME.time ("wall user sys rss_kib"), JSON -> NAME.json
strata_pull() {
  local name=$1 tag=$2 store=$3
  /usr/bin/time -f '%e %U %S %M' -o "$work/$name.time" "$tool" model pull \
    "$reg/bench/model:$tag" --store "$store" --out "$work/out-$name" --insecure --json \
    "${pull_flags[@]}" >"$work/$name.json"
  cmp -s "$work/out-$name/model.safetensors" "$work/$tag/model.safetensors" ||
    { echo "pulled $tag ($name) differs" >&2; exit 1; }
  "$tool" verify --store "$store" >/dev/null
}
# curl_pull NAME TAG: the blob whole, to a file, then through sha256sum
curl_pull() {
  local name=$1 tag=$2 digest
  digest="sha256:$(sha256sum "$work/$tag/model.safetensors" | cut -d' ' -f1)"
  /usr/bin/time -f '%e %U %S %M' -o "$work/$name.time" \
    curl -sf -o "$work/$name.blob" "http://$reg/v2/bench/model/blobs/$digest"
  cmp -s "$work/$name.blob" "$work/$tag/model.safetensors" || { echo "curl of $tag differs" >&2; exit 1; }
  rm -f "$work/$name.blob"
  /usr/bin/time -f '%e %U %S %M' -o "$work/$name-sha.time" bash -c \
    "curl -sf 'http://$reg/v2/bench/model/blobs/$digest' | sha256sum | grep -q '${digest#sha256:}'"
}

strata_pull cold base "$work/client-cold"
curl_pull curl-base base
for tuned in full partial; do
  cp -a "$work/client-cold" "$work/client-$tuned"
  strata_pull "$tuned" "$tuned" "$work/client-$tuned"
  curl_pull "curl-$tuned" "$tuned"
done

python3 - "$work" "$size" <<'PY'
import json, sys
work, size = sys.argv[1], int(sys.argv[2])
def timing(name):
    wall, user, system, rss = open(f"{work}/{name}.time").read().split()[-4:]
    return float(wall), float(user) + float(system), int(rss) / 1024
print("\n%-22s %8s %12s %8s %8s %8s  %s" % ("run", "wall s", "wire B", "CPU s", "CPU s/GB",
                                           "RSS MiB", "vs curl / curl+sha256"))
rows = [("cold (empty store)", "cold", "curl-base"), ("full fine-tune, base", "full", "curl-full"),
        ("partial fine-tune, base", "partial", "curl-partial")]
for label, run, curl in rows:
    report = json.load(open(f"{work}/{run}.json"))
    wall, cpu, rss = timing(run)
    cwall, ccpu, crss = timing(curl)
    swall, _, _ = timing(curl + "-sha")
    print("%-22s %8.2f %12d %8.2f %8.2f %8.0f  %.2fx / %.2fx" % (label, wall, report["wire_bytes_received"],
          cpu, cpu / (size / 1e9), rss, cwall / wall, swall / wall))
    print("%-22s %8.2f %12d %8.2f %8.2f %8.0f" % ("  curl -o", cwall, size, ccpu, ccpu / (size / 1e9), crss))
    print("%-22s %8.2f" % ("  curl | sha256sum", swall))
    stages = report["stages"]
    print("    stages (s): " + ", ".join("%s %.2f" % (k, v) for k, v in stages.items() if v >= 0.005)
          + "; deltas %d chunks" % report["deltas"]["chunks"])
print("\nvs curl: curl's wall time / strata's (>1: strata faster). CPU s/GB: user+sys per GB of model.")
print("Every pulled file cmp-identical to its source; every client store verified clean.")
PY
