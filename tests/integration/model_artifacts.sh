#!/usr/bin/env bash
# Model artifacts against docker-registry 2.8.2 on 127.0.0.1 (Debian 12; no referrers API, so the
# tag-schema fallback is what gets exercised; shared/specs/models.md §8):
#   1. a base model (two safetensors shards of normal-distributed F32 weights made here by python3,
#      config/tokenizer/licence files) and a fine-tune (one tensor changed) are packaged as Docker
#      artifacts, and the base also as ModelPack; all pushed with `strata model push`;
#   2. skopeo inspect --raw reads the manifests, the fallback tag "sha256-<hex>" holds an image
#      index listing the chunk index manifest, whose subject is the model manifest;
#   3. `strata model pull` of the base into an empty store, then of the fine-tune into that store:
#      the files equal the source (cmp), every blob digest matches (sha256sum), and the fine-tune
#      moves far fewer bytes than its size; a pull into a fresh store moves everything;
#   4. a manifest whose file-path annotation climbs out ("../escape") is refused, nothing written;
#   5. a byte flipped in a registry blob is caught by the chunk digest of the range that holds it.
# Prints the figures (bytes fetched vs full size vs plain pull, packaging MB/s); asserts only
# the byte counts. A missing tool makes the test skip (exit 77).
set -euo pipefail

strata=${1:?usage: model_artifacts.sh STRATA}
for tool in docker-registry skopeo curl python3 sha256sum cmp; do
  if ! command -v "$tool" >/dev/null; then
    echo "SKIP: $tool is not installed (scripts/install-deps.sh installs it)"
    exit 77
  fi
done

work=$(mktemp -d /tmp/strata-model.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
export XDG_DATA_HOME="$work/xdg" TMPDIR="$work/tmp" CONTAINERS_REGISTRIES_CONF="$work/registries.conf"
export HOME="$work/home" XDG_RUNTIME_DIR="$work/run"
unset REGISTRY_AUTH_FILE SOURCE_DATE_EPOCH http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
mkdir -p "$XDG_DATA_HOME" "$TMPDIR" "$HOME" "$XDG_RUNTIME_DIR"
: >"$CONTAINERS_REGISTRIES_CONF"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
json_field() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }

port=$(free_port)
cat >"$work/registry.yml" <<YML
version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: $work/registry}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$port}
YML
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  curl -s -o /dev/null "http://127.0.0.1:$port/v2/" && break
  sleep 0.1
done
reg="127.0.0.1:$port"

# ---- 1. models, packaged and pushed --------------------------------------------------------------
cat >"$work/make_model.py" <<'PY'
import json, os, random, struct, sys
# make_model.py DIR [CHANGED,...]: two safetensors shards (12 F32 tensors of 96k elements each,
# N(0, 0.05)), config.json, tokenizer.json, LICENSE. Tensors named in CHANGED get other values.
out = sys.argv[1]
changed = set(sys.argv[2].split(",")) if len(sys.argv) > 2 else set()
os.makedirs(out, exist_ok=True)
def shard(path, names):
    header, data = {"__metadata__": {"format": "pt"}}, b""
    for name in names:
        rnd = random.Random(name + ("/tuned" if name in changed else ""))
        values = struct.pack("<98304f", *[rnd.gauss(0, 0.05) for _ in range(98304)])
        header[name] = {"dtype": "F32", "shape": [384, 256], "data_offsets": [len(data), len(data) + len(values)]}
        data += values
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)
names = ["model.layers.%d.self_attn.%s_proj.weight" % (i, w) for i in range(4) for w in "qkv"]
shard(out + "/model-00001-of-00002.safetensors", names[:6])
shard(out + "/model-00002-of-00002.safetensors", names[6:])
json.dump({"architectures": ["LlamaForCausalLM"], "max_position_embeddings": 2048}, open(out + "/config.json", "w"))
json.dump({"model": {"type": "BPE", "vocab": {"a": 0}}}, open(out + "/tokenizer.json", "w"))
open(out + "/LICENSE", "w").write("Apache-2.0\n")
PY
python3 "$work/make_model.py" "$work/base"
python3 "$work/make_model.py" "$work/tuned" model.layers.3.self_attn.k_proj.weight
layout="$work/layout"
"$strata" model package "$work/base" --layout "$layout" --tag base --store "$work/pack-store" --json >"$work/pkg-base.json"
"$strata" model package "$work/tuned" --layout "$layout" --tag tuned --store "$work/pack-store" --json >"$work/pkg-tuned.json"
"$strata" model package "$work/base" --layout "$layout" --tag base-mp --format modelpack --json >"$work/pkg-mp.json"
"$strata" model package "$work/base" --layout "$work/layout2" --tag base --json >"$work/pkg-again.json"
[ "$(json_field "$work/pkg-base.json" 'd["manifest_digest"]')" = "$(json_field "$work/pkg-again.json" 'd["manifest_digest"]')" ] \
  || { echo "FAIL packaging the same files twice gave different digests"; exit 1; }
tuned_new=$(json_field "$work/pkg-tuned.json" 'd["new_raw_bytes"]')
[ "$tuned_new" = 393216 ] || { echo "FAIL fine-tune added $tuned_new new chunk bytes, expected one tensor (393216)"; exit 1; }
echo "ok: packaged base + fine-tune (fine-tune added $tuned_new B of new chunks to the store); digests reproducible"
for tag in base tuned base-mp; do
  "$strata" model push "$layout:$tag" "$reg/models/tiny:$tag" --insecure --json >"$work/push-$tag.json"
  [ "$(json_field "$work/push-$tag.json" 'd["referrers"]')" = tag ] || { cat "$work/push-$tag.json"; echo "FAIL push $tag: no fallback tag"; exit 1; }
done
echo "ok: pushed base, tuned, base-mp; chunk indexes published through the referrers fallback tag"

# ---- 2. what other tools see ---------------------------------------------------------------------
base_digest=$(json_field "$work/pkg-base.json" 'd["manifest_digest"]')
skopeo inspect --tls-verify=false --raw "docker://$reg/models/tiny:base" >"$work/raw-base.json"
[ "sha256:$(sha256sum <"$work/raw-base.json" | cut -d' ' -f1)" = "$base_digest" ] || { echo "FAIL skopeo sees another manifest"; exit 1; }
[ "$(json_field "$work/raw-base.json" 'd["config"]["mediaType"]')" = application/vnd.docker.ai.model.config.v0.2+json ] || { echo "FAIL config type"; exit 1; }
skopeo inspect --tls-verify=false --raw "docker://$reg/models/tiny:sha256-${base_digest#sha256:}" >"$work/fallback.json"
index_digest=$(json_field "$work/fallback.json" '[m["digest"] for m in d["manifests"] if m.get("artifactType") == "application/vnd.strata.model.chunk-index.v1+json"][0]')
[ "$index_digest" = "$(json_field "$work/pkg-base.json" 'd["chunk_index_digest"]')" ] || { echo "FAIL fallback tag lists $index_digest"; exit 1; }
skopeo inspect --tls-verify=false --raw "docker://$reg/models/tiny@$index_digest" >"$work/index-manifest.json"
[ "$(json_field "$work/index-manifest.json" 'd["subject"]["digest"]')" = "$base_digest" ] || { echo "FAIL chunk index subject"; exit 1; }
skopeo inspect --tls-verify=false --raw "docker://$reg/models/tiny:base-mp" >"$work/raw-mp.json"
[ "$(json_field "$work/raw-mp.json" 'd["artifactType"]')" = application/vnd.cncf.model.manifest.v1+json ] || { echo "FAIL modelpack artifactType"; exit 1; }
echo "ok: skopeo reads the manifests; fallback tag index -> chunk index manifest -> subject = model"

# ---- 3. pulls ------------------------------------------------------------------------------------
check_files() {  # SOURCE_DIR OUT_DIR PACKAGE_JSON
  local src=$1 out=$2 pkg=$3 path digest
  while read -r path digest; do
    cmp "$src/$path" "$out/$path" || { echo "FAIL $out/$path differs from the source"; exit 1; }
    [ "sha256:$(sha256sum "$out/$path" | cut -d' ' -f1)" = "$digest" ] || { echo "FAIL $path digest"; exit 1; }
  done < <(json_field "$pkg" '"\n".join(f["path"] + " " + f["digest"] for f in d["files"])')
}
"$strata" model pull "$reg/models/tiny:base" --store "$work/store" --out "$work/out-base" --insecure --json >"$work/pull-base.json"
check_files "$work/base" "$work/out-base" "$work/pkg-base.json"
"$strata" model pull "$reg/models/tiny:tuned" --store "$work/store" --out "$work/out-tuned" --insecure --json >"$work/pull-tuned.json"
check_files "$work/tuned" "$work/out-tuned" "$work/pkg-tuned.json"
"$strata" model pull "$reg/models/tiny:tuned" --store "$work/fresh-store" --out "$work/out-plain" --insecure --json >"$work/pull-plain.json"
check_files "$work/tuned" "$work/out-plain" "$work/pkg-tuned.json"
"$strata" model pull "$reg/models/tiny:base-mp" --store "$work/store" --out "$work/out-mp" --insecure --json >"$work/pull-mp.json"
check_files "$work/base" "$work/out-mp" "$work/pkg-mp.json"
total=$(json_field "$work/pull-tuned.json" 'd["total_bytes"]')
fetched=$(json_field "$work/pull-tuned.json" 'd["bytes_fetched"]')
plain=$(json_field "$work/pull-plain.json" 'd["bytes_fetched"]')
[ "$(json_field "$work/pull-tuned.json" 'd["referrers"]')" = tag ] || { echo "FAIL pull did not find the chunk index"; exit 1; }
[ "$fetched" -lt $((total / 5)) ] || { echo "FAIL fine-tune pull fetched $fetched of $total bytes"; exit 1; }
[ "$plain" -ge "$total" ] || { echo "FAIL fresh-store pull fetched only $plain of $total bytes"; exit 1; }
[ "$(json_field "$work/pull-mp.json" 'd["bytes_fetched"]')" -lt 100000 ] || { echo "FAIL modelpack pull refetched the weights"; exit 1; }
echo "ok: pulls: files equal the source, blob digests match"
echo "figures: fine-tune pull into a store holding the base fetched $fetched B of $total B" \
     "($(python3 -c "print(f'{100*$fetched/$total:.1f}')") %); plain pull (fresh store) fetched $plain B"
echo "figures: packaging $(json_field "$work/pkg-base.json" 'd["total_bytes"]') B with --store:" \
     "$(json_field "$work/pkg-base.json" 'round(d["mb_per_second"], 1)') MB/s"

# ---- 4. hostile file path ------------------------------------------------------------------------
python3 - "$work/raw-base.json" "$work/evil.json" <<'PY'
import json, sys
manifest = json.load(open(sys.argv[1]))
manifest["layers"][0]["annotations"]["org.cncf.model.filepath"] = "../escape"
open(sys.argv[2], "w").write(json.dumps(manifest, separators=(",", ":")))
PY
curl -sf -X PUT -H "Content-Type: application/vnd.oci.image.manifest.v1+json" \
  --data-binary @"$work/evil.json" "http://$reg/v2/models/tiny/manifests/evil" >/dev/null
if "$strata" model pull "$reg/models/tiny:evil" --store "$work/store" --out "$work/out-evil/inner" --insecure 2>"$work/evil.err"; then
  echo "FAIL a '../' file path was accepted"; exit 1
fi
grep -q "'..' component" "$work/evil.err" || { cat "$work/evil.err"; echo "FAIL evil path message"; exit 1; }
[ ! -e "$work/out-evil/escape" ] || { echo "FAIL a file was written outside --out"; exit 1; }
echo "ok: '../escape' refused: $(head -c 160 "$work/evil.err")"

# ---- 5. a corrupted blob in the registry: the range of a changed chunk fails its chunk digest -----
shard=$(json_field "$work/pkg-tuned.json" '[f["digest"] for f in d["files"] if f["path"] == "model-00002-of-00002.safetensors"][0]')
hex=${shard#sha256:}
data="$work/registry/docker/registry/v2/blobs/sha256/${hex:0:2}/$hex/data"
[ -f "$data" ] || { echo "FAIL registry blob file not found: $data"; exit 1; }
size=$(stat -c %s "$data")
# A byte inside the changed k_proj tensor (the second-to-last tensor of the shard).
printf '\xff' | dd of="$data" bs=1 seek=$((size - 393216 - 1000)) conv=notrunc status=none
"$strata" model pull "$reg/models/tiny:base" --store "$work/store-corrupt" --insecure >/dev/null
if "$strata" model pull "$reg/models/tiny:tuned" --store "$work/store-corrupt" --out "$work/out-corrupt" --insecure 2>"$work/corrupt.err"; then
  echo "FAIL a corrupted chunk was accepted"; exit 1
fi
grep -q "as its chunk index says" "$work/corrupt.err" || { cat "$work/corrupt.err"; echo "FAIL corrupt chunk message"; exit 1; }
[ ! -e "$work/out-corrupt/model-00002-of-00002.safetensors" ] || { echo "FAIL corrupt file written"; exit 1; }
echo "ok: corrupted chunk refused: $(head -c 200 "$work/corrupt.err")"
