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
# Usage: bench/delta_model.sh [BUILD_DIR]
#   MODEL_MIB (default 120) sets the base size, PARTIAL (default 4) the partial fine-tune,
#   DELTA_LEVELS (e.g. "3 9 19") adds delta-store runs at those zstd levels (--delta-level).
set -euo pipefail

build_dir=$(cd "${1:-build}" && pwd)
tool="$build_dir/tools/strata"
driver="$build_dir/bench/delta_model"
for binary in "$tool" "$driver"; do
  [[ -x "$binary" ]] || { echo "build $binary first (cmake --build $build_dir)" >&2; exit 1; }
done
mib=${MODEL_MIB:-120}
partial=${PARTIAL:-4}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

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
