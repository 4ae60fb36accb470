#!/usr/bin/env bash
# `strata pull` of chunked layers from a real docker-registry on 127.0.0.1 (shared/specs/
# layer-formats.md §1 zstd:chunked, §2 eStargz, §3 Range GETs): for zstd:chunked, its old variant
# and eStargz, a v1 image and a v2 (v1 with one file edited in place and one file added) built by
# `strata build` + `strata convert` are pushed; v1 is pulled into an empty store, v2 into that warm
# store. The warm pull must move far fewer bytes than v2's layer (wire counters, --json), and
# every exported layer must equal the blob decompressed by an independent tool (zstd -dc,
# gzip -dc) and hash to its diff_id. Then through the fault proxy (registry_fault_proxy.py:
# multi-range answered 200, the first whole answer of a blob dropped half-way, a flipped byte in
# "/corrupt" repositories): the pull ends with the right layer or is refused, leaving nothing.
# A plain gzip layer and a pull with --layout fall back to whole blobs and say why.
# A missing tool makes the test skip (exit 77) with its name.
set -euo pipefail

strata=${1:?usage: registry_partial_pull.sh STRATA}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=registry_env.sh
. "$here/registry_env.sh"
registry_env_require docker-registry curl python3 gzip zstd
registry_env_init strata-partial-pull

# ---- images: v2 = v1 with 4 KiB rewritten inside lib2.so, a new file, an edited text -------------
v1="$work/v1" v2="$work/v2"
mkdir -p "$v1/usr/lib" "$v1/etc"
head -c 1500000 /dev/urandom >"$v1/usr/lib/lib1.so"
head -c 1200000 /dev/urandom >"$v1/usr/lib/lib2.so"
printf 'version 1\n' >"$v1/etc/release"
cp -a "$v1" "$v2"
head -c 4096 /dev/urandom | dd of="$v2/usr/lib/lib2.so" bs=1 seek=600000 conv=notrunc status=none
head -c 100000 /dev/urandom >"$v2/usr/lib/lib3.so"
printf 'version 2\n' >"$v2/etc/release"
gz="$work/gz"
"$strata" build "$v1" --layout "$gz" --tag v1 --format gzip >/dev/null
"$strata" build "$v2" --layout "$gz" --tag v2 --format gzip >/dev/null
formats="zstd:chunked zstd:chunked-v1 estargz"
for format in $formats; do
  name=${format//:/-}
  for version in v1 v2; do
    "$strata" convert "$gz:$version" --to "$format" --layout "$work/$name" --tag "$version" --json \
      >"$work/$name-$version.json"
  done
done

start_registry plain
reg="127.0.0.1:$port"
start_fault_proxy "${reg#*:}" proxy

# layer_of LAYOUT TAG FIELD: digest / diff_id / size of the image's only layer.
layer_of() {
  python3 - "$@" <<'PY'
import json, sys
root, tag, field = sys.argv[1:4]
index = json.load(open(f"{root}/index.json"))
desc = [m for m in index["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] == tag][0]
manifest = json.load(open(f"{root}/blobs/sha256/{desc['digest'][7:]}"))
config = json.load(open(f"{root}/blobs/sha256/{manifest['config']['digest'][7:]}"))
layer = manifest["layers"][0]
print({"digest": layer["digest"], "size": layer["size"], "diff_id": config["rootfs"]["diff_ids"][0]}[field])
PY
}

# check_export STORE LAYOUT TAG FORMAT: the store's layer equals the blob decompressed by zstd/gzip.
check_export() {
  local store=$1 layout=$2 tag=$3 format=$4 digest diff_id
  digest=$(layer_of "$layout" "$tag" digest)
  diff_id=$(layer_of "$layout" "$tag" diff_id)
  "$strata" export --store "$store" "$diff_id" -o "$work/export.tar" >/dev/null
  blob="$layout/blobs/sha256/${digest#sha256:}"
  if [ "$format" = estargz ]; then gzip -dc "$blob" >"$work/expected.tar"; else zstd -qdc "$blob" >"$work/expected.tar"; fi
  cmp "$work/export.tar" "$work/expected.tar" || { echo "FAIL $format $tag: export differs from the decompressed blob"; exit 1; }
  [ "sha256:$(sha256sum <"$work/expected.tar" | cut -c1-64)" = "$diff_id" ] || { echo "FAIL $format $tag: diff_id"; exit 1; }
}

for format in $formats; do
  name=${format//:/-}
  layout="$work/$name"
  for version in v1 v2; do
    "$strata" push "$layout:$version" "$reg/strata/$name:$version" --insecure >/dev/null
  done
  store="$work/store-$name"
  "$strata" pull "$reg/strata/$name:v1" --store "$store" --insecure --json >"$work/pull-$name-v1.json"
  [ "$(json_field "$work/pull-$name-v1.json" 'd["layers"][0]["chunked"]')" = True ] \
    || { cat "$work/pull-$name-v1.json"; echo "FAIL $format v1 not pulled as a chunked layer"; exit 1; }
  [ "$(json_field "$work/pull-$name-v1.json" 'd["layers"][0]["chunked_format"]')" = "$format" ] || { echo "FAIL $format name"; exit 1; }
  check_export "$store" "$layout" v1 "$format"
  cp -a "$store" "$work/warm-$name"  # the warm store as it was before v2, for the proxy runs
  "$strata" pull "$reg/strata/$name:v2" --store "$store" --insecure --json >"$work/pull-$name-v2.json"
  check_export "$store" "$layout" v2 "$format"
  size=$(layer_of "$layout" v2 size)
  fetched=$(json_field "$work/pull-$name-v2.json" 'd["bytes_fetched"]')
  local_chunks=$(json_field "$work/pull-$name-v2.json" 'd["layers"][0]["chunks_local"]')
  [ "$local_chunks" -gt 0 ] || { echo "FAIL $format v2 took no chunk from the store"; exit 1; }
  [ $((fetched * 4)) -lt "$size" ] || { cat "$work/pull-$name-v2.json"; echo "FAIL $format warm pull moved $fetched of $size bytes"; exit 1; }
  echo "ok: $format: v1 into an empty store, v2 into the warm one moved $fetched of $size bytes ($local_chunks chunks local); exports equal zstd/gzip -dc"

  # Through the fault proxy: multi-range answered with the whole blob (dropped once half-way).
  cp -a "$work/warm-$name" "$work/proxy-$name"
  "$strata" pull "$proxy/strata/$name:v2" --store "$work/proxy-$name" --insecure --json >"$work/proxy-$name.json"
  check_export "$work/proxy-$name" "$layout" v2 "$format"
  [ "$(json_field "$work/proxy-$name.json" 'd["layers"][0]["chunked"]')" = True ] || { echo "FAIL $format proxy pull not chunked"; exit 1; }
  # A flipped byte in every blob answer: refused, and the store does not gain the layer.
  "$strata" push "$layout:v2" "$reg/strata/corrupt-$name:v2" --insecure --mount-from "strata/$name" >/dev/null
  cp -a "$work/warm-$name" "$work/corrupt-$name"
  if "$strata" pull "$proxy/strata/corrupt-$name:v2" --store "$work/corrupt-$name" --insecure 2>"$work/corrupt.err" >/dev/null; then
    echo "FAIL $format corrupt layer accepted"; exit 1
  fi
  grep -Eq "hash|digest" "$work/corrupt.err" || { cat "$work/corrupt.err"; echo "FAIL $format corrupt message"; exit 1; }
  grep -q "$(layer_of "$layout" v2 digest)" "$work/corrupt.err" || { cat "$work/corrupt.err"; echo "FAIL $format: refusal does not name the layer"; exit 1; }
  if "$strata" export --store "$work/corrupt-$name" "$(layer_of "$layout" v2 diff_id)" -o "$work/x.tar" 2>/dev/null; then
    echo "FAIL $format corrupt pull left the layer in the store"; exit 1
  fi
  echo "ok: $format through the fault proxy: right layer, corrupt one refused: $(tail -c 160 "$work/corrupt.err")"
done
grep -q "multi-range-as-200" "$work/proxy.log" || { echo "FAIL no multi-range went through the proxy"; exit 1; }
grep -q "dropped" "$work/proxy.log" || { echo "FAIL the proxy dropped nothing"; exit 1; }

# ---- fallbacks: a gzip layer, and --layout (the exact blob is wanted) --------------------------
"$strata" push "$gz:v1" "$reg/strata/gz:v1" --insecure >/dev/null
"$strata" pull "$reg/strata/gz:v1" --store "$work/store-gz" --insecure --json >"$work/pull-gz.json"
[ "$(json_field "$work/pull-gz.json" 'd["layers"][0]["whole_reason"]')" = "not a chunked layer" ] || { echo "FAIL gzip reason"; exit 1; }
"$strata" pull "$reg/strata/zstd-chunked:v2" --store "$work/store-layout" --layout "$work/pulled" --insecure >"$work/pull-layout.txt"
grep -q "whole (the layout needs the whole blob)" "$work/pull-layout.txt" || { cat "$work/pull-layout.txt"; echo "FAIL layout reason"; exit 1; }
grep -Eq "fetched [0-9]+ of [0-9]+ bytes \([0-9.]+%\)" "$work/pull-layout.txt" || { echo "FAIL summary line"; exit 1; }
echo "ok: gzip layer and --layout pulls fetch whole blobs and say why"
echo "PASS"
