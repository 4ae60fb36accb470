#!/usr/bin/env bash
# Integration check of strata's zstd:chunked writer against real tools from Debian 12
# (shared/specs/layer-formats.md §1.1-§1.4, §4): `zstd -d` of the blob gives the diff_id tar and
# `tar -t` lists it; Debian's `tar-split asm` rebuilds the diff_id tar from strata's tar-split
# frame plus the extracted files; `skopeo copy` of the converted image into a private
# docker-registry on 127.0.0.1 works and `skopeo inspect --raw` shows the zstd:chunked
# annotations unchanged; `strata build --format zstd:chunked|estargz` layers carry their
# annotations as `skopeo inspect --raw` of the layout shows them. Registry setup from registry_env.sh (fresh root, free port, empty
# registries.conf). A missing tool makes the test skip (exit 77) with its name.
set -euo pipefail

strata=${1:?usage: fastpull_tools.sh PATH_TO_STRATA TESTDATA_OCI_LAYOUTS}
layouts=${2:?usage: fastpull_tools.sh PATH_TO_STRATA TESTDATA_OCI_LAYOUTS}
# shellcheck source=registry_env.sh
. "$(cd "$(dirname "$0")" && pwd)/registry_env.sh"
registry_env_require skopeo docker-registry curl python3 zstd tar-split gzip tar
registry_env_init strata-fastpull-tools

out="$work/out"
"$strata" convert "$layouts/gzip-v1:v1" --to zstd:chunked --layout "$out" --tag v1 >/dev/null

# Manifest, layer digest, annotations and diff_id of the converted image.
python3 - "$out" >"$work/layer.env" <<'PY'
import json, sys
root = sys.argv[1]
index = json.load(open(f"{root}/index.json"))
desc = [m for m in index["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] == "v1"][0]
manifest = json.load(open(f"{root}/blobs/sha256/{desc['digest'][7:]}"))
config = json.load(open(f"{root}/blobs/sha256/{manifest['config']['digest'][7:]}"))
layer = manifest["layers"][0]
ts = layer["annotations"]["io.github.containers.zstd-chunked.tarsplit-position"].split(":")
print(f"blob={root}/blobs/sha256/{layer['digest'][7:]}")
print(f"diff_id={config['rootfs']['diff_ids'][0][7:]}")
print(f"ts_offset={ts[0]}")
print(f"ts_length={ts[1]}")
print(f"checksum={layer['annotations']['io.github.containers.zstd-chunked.manifest-checksum']}")
PY
# shellcheck disable=SC1091
. "$work/layer.env"

got=$(zstd -dc "$blob" | sha256sum | cut -c1-64)
[ "$got" = "$diff_id" ] || { echo "FAIL: zstd -d gives $got, diff_id is $diff_id"; exit 1; }
zstd -dc "$blob" | tar -t >"$work/list.txt"
grep -qx './etc/hello.txt' "$work/list.txt" || { echo "FAIL: tar -t lacks ./etc/hello.txt"; exit 1; }
echo "ok: zstd -d and tar -t read the zstd:chunked blob (diff_id $diff_id)"

# tar-split asm: strata's tar-split frame + the files -> the diff_id tar.
mkdir -p "$work/rootfs"
zstd -dc "$blob" | tar -x -C "$work/rootfs" --numeric-owner
dd if="$blob" of="$work/ts.zst" bs=1 skip="$ts_offset" count="$ts_length" status=none
zstd -dc "$work/ts.zst" | gzip >"$work/ts.json.gz"
tar-split asm --input "$work/ts.json.gz" --path "$work/rootfs" --output "$work/asm.tar" 2>"$work/asm.log"
got=$(sha256sum <"$work/asm.tar" | cut -c1-64)
[ "$got" = "$diff_id" ] || { echo "FAIL: tar-split asm gives $got"; cat "$work/asm.log"; exit 1; }
echo "ok: tar-split asm rebuilds the diff_id tar from strata's tar-split"

# `strata build` straight into the chunked formats: skopeo reads the layout and sees each format's
# annotations on the layer descriptor (skopeo inspect of an oci: layout needs no registry).
for format in zstd:chunked estargz; do
  "$strata" build "$work/rootfs" --layout "$work/built" --tag "${format%%:*}" --format "$format" >/dev/null
  skopeo inspect --raw "oci:$work/built:${format%%:*}" >"$work/built-raw.json"
  python3 - "$work/built-raw.json" "$format" <<'PY'
import json, sys
layer = json.load(open(sys.argv[1]))["layers"][0]
annotations = layer.get("annotations", {})
keys = {"zstd:chunked": ["io.github.containers.zstd-chunked.manifest-checksum",
                         "io.github.containers.zstd-chunked.manifest-position",
                         "io.github.containers.zstd-chunked.tarsplit-position"],
        "estargz": ["containerd.io/snapshot/stargz/toc.digest",
                    "io.containers.estargz.uncompressed-size"]}[sys.argv[2]]
missing = [k for k in keys if k not in annotations]
if missing:
    sys.exit(f"FAIL: skopeo sees no {missing} on the {sys.argv[2]} layer built by strata")
PY
  echo "ok: skopeo inspect --raw shows the $format annotations of strata build"
done

start_registry registry

skopeo --insecure-policy copy --quiet --dest-tls-verify=false \
  "oci:$out:v1" "docker://127.0.0.1:$port/strata/fastpull:v1"
skopeo inspect --raw --tls-verify=false "docker://127.0.0.1:$port/strata/fastpull:v1" >"$work/raw.json"
python3 - "$work/raw.json" "$checksum" <<'PY'
import json, sys
manifest = json.load(open(sys.argv[1]))
annotations = manifest["layers"][0].get("annotations", {})
key = "io.github.containers.zstd-chunked.manifest-checksum"
if annotations.get(key) != sys.argv[2]:
    sys.exit(f"FAIL: registry manifest annotations {annotations}")
for k in ("io.github.containers.zstd-chunked.manifest-position",
          "io.github.containers.zstd-chunked.tarsplit-position"):
    if k not in annotations:
        sys.exit(f"FAIL: {k} missing after skopeo copy")
PY
# The registry serves the blob byte for byte (range requests are what a lazy puller uses).
curl -fs -r 0-99 "http://127.0.0.1:$port/v2/strata/fastpull/blobs/sha256:$(basename "$blob")" \
  -o "$work/head.bin"
cmp -n 100 "$work/head.bin" "$blob"
echo "ok: skopeo copy into docker-registry keeps the zstd:chunked annotations"
