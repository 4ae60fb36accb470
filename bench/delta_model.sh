#!/usr/bin/env bash
# Model fine-tunes as deltas (issue 16, "Must show": a full fine-tune pair and a partial one).
# bench/delta_model.cpp writes a synthetic BF16 safetensors base model (normal weights, per-tensor
# std spread over 0.5-2x of 0.02; no real BF16 weights can be fetched here), a full fine-tune
# (every tensor W + N(0, 0.02 std(W)), rounded to BF16) and a partial one (PARTIAL tensors
# changed the same way), and computes the floor: each tensor XOR'd with the base tensor of the
# same name, byte-grouped, zstd -19. For each fine-tune: the store growth of
# `strata model package --store` after the base, without and with `--delta-base auto`, against
# `zstd -19` of the file and the floor; ingest seconds against `zstd -3 -T2`; peak RSS
# (/usr/bin/time -v); verify and a byte-exact export of the fine-tune from the delta store.
# Then over the wire (docs/DELTA.md): base and fine-tune pushed to a docker-registry on loopback
# (tests/integration/registry_env.sh), the fine-tune with its delta referrer (`model push
# --delta-store`); a client that pulled the base pulls the fine-tune into two copies of its store,
# with the referrer and with --no-deltas: bytes on the wire (wire_bytes_received: every response
# body) against the floor, pull wall time, peak RSS, and both files cmp-identical to the source.
# Usage: bench/delta_model.sh [BUILD_DIR]
#   MODEL_MIB (default 120) sets the base size, PARTIAL (default 4) the partial fine-tune,
#   DELTA_LEVELS (e.g. "3 9 19") adds delta-store runs at those zstd levels (--delta-level),
#   WIRE=0 leaves the registry part out (it needs docker-registry and curl).
set -euo pipefail

build_dir=$(cd "${1:-build}" && pwd)
tool="$build_dir/tools/strata"
driver="$build_dir/bench/delta_model"
for binary in "$tool" "$driver"; do
  [[ -x "$binary" ]] || { echo "build $binary first (cmake --build $build_dir)" >&2; exit 1; }
done
mib=${MODEL_MIB:-120}
partial=${PARTIAL:-4}
wire=${WIRE:-1}
if [[ $wire == 1 ]]; then
  # shellcheck source=../tests/integration/registry_env.sh
  . "$(cd "$(dirname "$0")/.." && pwd)/tests/integration/registry_env.sh"
  registry_env_require docker-registry curl python3
  registry_env_init strata-delta-model  # sets $work, removed on exit
else
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
fi

mkdir -p "$work/base" "$work/full" "$work/partial"
"$driver" synth "$work/base/model.safetensors" 1 "$mib"
"$driver" finetune "$work/base/model.safetensors" "$work/full/model.safetensors" 2 full
"$driver" finetune "$work/base/model.safetensors" "$work/partial/model.safetensors" 3 \
  "partial:$partial"
size=$(stat -c %s "$work/base/model.safetensors")
echo "base model: $size bytes BF16 safetensors; $(nproc) CPUs; $(zstd --version | head -1)"

# package MODEL STORE TAG [FLAGS...] -> JSON report in $work/TAG.json, time -v in $work/TAG.time
package() {
  local model=$1 store=$2 tag=$3
  shift 3
  /usr/bin/time -v "$tool" model package "$work/$model" --layout "$work/layout-$tag" --tag v \
    --store "$store" --json "$@" >"$work/$tag.json" 2>"$work/$tag.time"
}
field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$@"; }
rss_mib() { awk '/Maximum resident/ { printf "%.0f", $6 / 1024 }' "$1"; }
wall() { python3 -c "import json,sys; print('%.2f' % json.load(open(sys.argv[1]))['seconds'])" "$1"; }

for case in full partial; do
  file="$work/$case/model.safetensors"
  floor=$("$driver" floor "$work/base/model.safetensors" "$file")
  floor_bytes=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['floor_bytes'])" "$floor")
  changed=$(python3 -c "import json,sys; r=json.loads(sys.argv[1]); \
print('%d of %d tensors, %.1f %% of values' % (r['changed_tensors'], r['tensors'], \
100.0 * r['changed_values'] / r['values']))" "$floor")
  z19=$(zstd -q -19 -T2 -c "$file" | wc -c)
  start=$(date +%s.%N)
  zstd -q -3 -T2 -c "$file" >/dev/null
  z3_seconds=$(python3 -c "import sys,time; print('%.2f' % (time.time() - float(sys.argv[1])))" "$start")

  runs=("plain:" "delta:--delta-base auto")
  for level in ${DELTA_LEVELS:-}; do runs+=("delta-l$level:--delta-base auto --delta-level $level"); done
  echo
  echo "== $case fine-tune ($changed changed); floor $floor_bytes, zstd -19 -T2 $z19," \
    "zstd -3 -T2 ${z3_seconds}s"
  printf '%-12s %12s %9s %9s %10s %9s %8s %9s\n' run "grown B" "x floor" "x zstd19" \
    "delta chk" seconds "RSS MiB" "base RSS"
  for run in "${runs[@]}"; do
    name=${run%%:*}
    read -r -a flags <<<"${run#*:}"
    store="$work/store-$case-$name"
    package base "$store" "$case-$name-base"
    package "$case" "$store" "$case-$name" "${flags[@]}"
    grown=$(field "$work/$case-$name.json" new_stored_bytes)
    deltas=$(field "$work/$case-$name.json" delta_chunks)
    printf '%-12s %12d %9.3f %9.3f %10d %9s %8s %9s\n' "$name" "$grown" \
      "$(python3 -c "print($grown / $floor_bytes)")" "$(python3 -c "print($grown / $z19)")" \
      "$deltas" "$(wall "$work/$case-$name.json")" "$(rss_mib "$work/$case-$name.time")" \
      "$(rss_mib "$work/$case-$name-base.time")"
    digest="sha256:$(sha256sum "$file" | cut -d' ' -f1)"
    "$tool" verify --store "$store" >/dev/null
    "$tool" export --store "$store" "$digest" -o "$work/exported" >/dev/null
    cmp -s "$work/exported" "$file" || { echo "export of $case ($name) differs" >&2; exit 1; }
    rm -rf "$store" "$work/layout-$case-$name" "$work/layout-$case-$name-base" "$work/exported"
  done
done
echo
echo "grown B: new stored chunk bytes of the fine-tune (model package --json new_stored_bytes);"
echo "every store verified clean and exported the fine-tune byte-identical."

[[ $wire == 1 ]] || exit 0
# ---- over the wire --------------------------------------------------------------------------------
start_registry bench
reg="127.0.0.1:$port"
pull_row() {  # pull_row NAME JSON TIME FLOOR
  python3 - "$@" <<'PY'
import json, sys
name, report, timing, floor = sys.argv[1], json.load(open(sys.argv[2])), open(sys.argv[3]).read().split(), int(sys.argv[4])
wire = report["wire_bytes_received"]
d = report["deltas"]
print("%-14s %12d %9.3f %12d %12d %6d %6d %8s %8.0f" % (name, wire, wire / floor, report["bytes_fetched"],
      report["bytes_fetched_without_deltas"], d["chunks"], d["fallbacks"], timing[0], int(timing[1]) / 1024))
PY
}
for case in full partial; do
  file="$work/$case/model.safetensors"
  floor_bytes=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['floor_bytes'])" \
    "$("$driver" floor "$work/base/model.safetensors" "$file")")
  store="$work/wire-store-$case"
  package base "$store" "wire-$case-base"
  package "$case" "$store" "wire-$case" --delta-base auto
  "$tool" model push "$work/layout-wire-$case-base:v" "$reg/bench/$case:base" --insecure >/dev/null
  "$tool" model push "$work/layout-wire-$case:v" "$reg/bench/$case:tuned" --insecure \
    --delta-store "$store" --json >"$work/push-$case.json"
  client="$work/client-$case"
  "$tool" model pull "$reg/bench/$case:base" --store "$client-with" --insecure >/dev/null
  cp -a "$client-with" "$client-without"
  for mode in with without; do
    flags=()
    [[ $mode == without ]] && flags=(--no-deltas)
    /usr/bin/time -f '%e %M' -o "$work/pull-$case-$mode.time" "$tool" model pull \
      "$reg/bench/$case:tuned" --store "$client-$mode" --out "$work/out-$case-$mode" --insecure \
      --json "${flags[@]}" >"$work/pull-$case-$mode.json"
    cmp -s "$work/out-$case-$mode/model.safetensors" "$file" ||
      { echo "pulled $case ($mode deltas) differs" >&2; exit 1; }
    "$tool" verify --store "$client-$mode" >/dev/null
  done
  echo
  echo "== $case fine-tune over the wire: floor $floor_bytes; referrer" \
    "$(python3 -c "import json,sys; d=json.load(open(sys.argv[1]))['delta_referrer']; \
print('%d of %d chunks, frames %d B, index %d B, via %s' % (d['delta_chunks'], d['chunks'], \
d['frames_bytes'], d['index_bytes'], d['referrers']))" "$work/push-$case.json")"
  printf '%-14s %12s %9s %12s %12s %6s %6s %8s %8s\n' pull "wire B" "x floor" "fetched B" \
    "est. w/o" deltas "fallb" seconds "RSS MiB"
  pull_row "with deltas" "$work/pull-$case-with.json" "$work/pull-$case-with.time" "$floor_bytes"
  pull_row "--no-deltas" "$work/pull-$case-without.json" "$work/pull-$case-without.time" \
    "$floor_bytes"
  rm -rf "$store" "$client-with" "$client-without" "$work/out-$case-with" "$work/out-$case-without"
done
echo
echo "wire B: response bodies of the fine-tune pull (wire_bytes_received: manifest, config, chunk"
echo "index, referrer, ranges, multipart framing); est. w/o: the pull's own bytes_fetched_without_deltas;"
echo "both pulled files cmp-identical to the fine-tune, both stores verified clean."
