#!/usr/bin/env bash
# The main job of `make run`, on real data shaped like the images strata exists for: a Python ML
# image layer (Debian's CPython 3.11 standard library and libpython, NumPy, SciPy and OpenBLAS,
# unpacked from the archive's .debs) in two versions -- v2 is the archive's newer CPython security
# update, the rest as rebuilt -- and a model (safetensors, BF16) with a fine-tune of a few layers.
#  1. Both layers (tar+zstd, as a registry holds them) are ingested into a fresh embedded store:
#     new bytes per version, dedup ratio, throughput, and v2 again with delta coding against v1.
#  2. The layers are built as zstd:chunked images, pushed to a docker-registry on loopback, and
#     pulled into an empty store (v1) and then the warm one (v2): bytes fetched on the wire; then
#     v2 again pushed with its delta referrer (docs/DELTA.md) and pulled by a v1 holder through it.
#  3. The model and its fine-tune are pushed with their chunk index and pulled the same way.
#  4. The export of v2 from the store is checked byte for byte against its diff_id.
# Downloads are cached in build/demo-cache. Rests on apt-get download, dpkg-deb, tar, zstd,
# docker-registry (scripts/install-deps.sh installs them) and tests/integration/registry_env.sh.
set -euo pipefail
tool=$(realpath "${1:?usage: run-demo.sh PATH_TO_STRATA [DEMO_DIR]}")
root=$(cd "$(dirname "$0")/.." && pwd)
demo=${2:-build/demo}
cache=$(realpath -m "${STRATA_DEMO_CACHE:-build/demo-cache}")
rm -rf "$demo" && mkdir -p "$demo/v1" "$demo/v2" "$cache"
demo=$(realpath "$demo")

# ---- 1. the data ------------------------------------------------------------------------------
updated=(libpython3.11-stdlib libpython3.11)          # the update between v1 and v2
unchanged=(python3-numpy python3-scipy libopenblas0-pthread libgfortran5)
versions_of() { apt-cache madison "$1" 2>/dev/null | awk '{print $3}' | sort -uV; }
if [ -z "$(versions_of "${updated[0]}")" ]; then
  apt-get update -qq >/dev/null 2>&1 || true
fi
mapfile -t python_versions < <(versions_of "${updated[0]}")
[ ${#python_versions[@]} -ge 1 ] || { echo "apt-cache knows no ${updated[0]}" >&2; exit 1; }
new_version=${python_versions[-1]}
old_version=${python_versions[0]}
[ ${#python_versions[@]} -ge 2 ] && old_version=${python_versions[-2]}

fetch_deb() {  # fetch_deb PACKAGE [VERSION] -> path of the cached .deb (apt names "1:2.0" "1%3a2.0")
  local package=$1 version=${2:-} spec=$1 pattern found
  [ -n "$version" ] && spec="$package=$version"
  pattern="${package}_${version//:/%3a}*.deb"
  [ -z "$version" ] && pattern="${package}_*.deb"
  found=$(find "$cache" -name "$pattern" | sort -V | tail -1)
  if [ -z "$found" ]; then
    (cd "$cache" && apt-get download -q "$spec" >/dev/null 2>&1) ||
      { echo "cannot download $spec from the Debian archive" >&2; exit 1; }
    found=$(find "$cache" -name "$pattern" | sort -V | tail -1)
  fi
  echo "$found"
}
echo "== fetching the image's packages from the Debian archive (cached in $cache)"
for package in "${unchanged[@]}"; do
  deb=$(fetch_deb "$package")
  dpkg-deb -x "$deb" "$demo/v1"
  dpkg-deb -x "$deb" "$demo/v2"
done
for package in "${updated[@]}"; do
  dpkg-deb -x "$(fetch_deb "$package" "$old_version")" "$demo/v1"
  dpkg-deb -x "$(fetch_deb "$package" "$new_version")" "$demo/v2"
done
if [ "$old_version" = "$new_version" ]; then
  # The archive serves one version only: v2 gets a few patched bytes in the library instead.
  python3 - "$demo/v2" <<'PY'
import glob, os, sys
for path in sorted(glob.glob(sys.argv[1] + "/usr/lib/x86_64-linux-gnu/libpython3.11.so.*"))[:1]:
    with open(path, "r+b") as f:
        size = os.path.getsize(path)
        for k in range(4):
            f.seek(size * (k + 1) // 6)
            f.write(bytes([k]) * 512)
PY
fi

make_layer() {  # deterministic tar, then zstd -3 like a registry's tar+zstd layer
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 --format=pax \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime -C "$demo/$1" -cf "$demo/$1.tar" .
  zstd -q -3 -T0 -f "$demo/$1.tar" -o "$demo/$1.tar.zst"
}
make_layer v1
make_layer v2

# A model of 16 BF16 tensors (2 Mi elements each, values of a N(0, 0.02) shape) and a fine-tune
# that changed 3 of them: what a LoRA merge or a partial fine-tune publishes.
python3 - "$demo/model" <<'PY'
import json, os, random, struct, sys
def write(directory, changed):
    os.makedirs(directory, exist_ok=True)
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for i in range(16):
        name = f"model.layers.{i}.mlp.weight"
        seed = name + ("/tuned" if i in changed else "")
        rnd = random.Random(seed)
        # BF16 of small normal values: the sign/exponent byte repeats, the mantissa byte varies.
        exponent = bytes(rnd.choice((0x3C, 0x3D, 0xBC, 0xBD)) for _ in range(4096))
        mantissa = rnd.randbytes(4096)
        row = bytes(b for pair in zip(mantissa, exponent) for b in pair)
        data = b"".join(row[k:] + row[:k] for k in range(0, 512 * 7, 7))  # 4 MiB
        header[name] = {"dtype": "BF16", "shape": [2048, 1024], "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(os.path.join(directory, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for data in blobs:
            f.write(data)
    json.dump({"architectures": ["LlamaForCausalLM"], "torch_dtype": "bfloat16"},
              open(os.path.join(directory, "config.json"), "w"))
write(sys.argv[1] + "/base", set())
write(sys.argv[1] + "/tuned", {3, 7, 11})
PY

# ---- 2. ingest into the embedded store --------------------------------------------------------
store="$demo/store"
delta_store="$demo/store-delta"
active_kernel=$("$tool" kernels --json | python3 -c 'import json,sys; print([k["name"] for k in json.load(sys.stdin)["kernels"] if k["active"]][0])')
echo "== strata $("$tool" --version | awk '{print $2}'), chunker kernel $active_kernel, $(nproc) cores ($(lscpu | sed -n 's/^Model name: *//p'))"
echo "== ingesting a Python ML image layer: CPython $old_version -> $new_version, NumPy, SciPy, OpenBLAS"
"$tool" ingest --store "$store" --json "$demo/v1.tar.zst" >"$demo/v1.json"
"$tool" ingest --store "$store" --json "$demo/v2.tar.zst" >"$demo/v2.json"
"$tool" ingest --store "$delta_store" --json "$demo/v1.tar.zst" >"$demo/v1-delta.json"
"$tool" ingest --store "$delta_store" --delta-base auto --json "$demo/v2.tar.zst" >"$demo/v2-delta.json"
"$tool" export --store "$store" "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["diff_id"])' "$demo/v2.json")" \
  -o "$demo/v2.exported.tar" >/dev/null

# ---- 3. over the wire: a docker-registry on loopback ------------------------------------------
source "$root/tests/integration/registry_env.sh"
registry_env_init strata-demo  # a sandbox ($work) removed on exit
start_registry demo
registry="127.0.0.1:$port"
layout="$demo/layout"
echo "== building zstd:chunked images, pushing them to docker-registry at $registry, pulling"
for version in v1 v2; do
  "$tool" build "$demo/$version" --layout "$layout" --tag "$version" --format zstd:chunked --json >"$demo/build-$version.json"
  "$tool" push "$layout:$version" "$registry/ml/python:$version" --insecure --json >/dev/null
done
"$tool" pull "$registry/ml/python:v1" --store "$demo/pull-store" --insecure --json >"$demo/pull-v1.json"
"$tool" pull "$registry/ml/python:v2" --store "$demo/pull-store" --insecure --json >"$demo/pull-v2.json"
# The same update shipped with deltas (docs/DELTA.md): images built from the store that holds v2 as
# deltas against v1, v2 pushed with its delta referrer; a client holding v1 pulls v2 through it.
delta_layout="$demo/layout-delta"
"$tool" build "$demo/v1.tar" --format zstd:chunked --store "$delta_store" --layout "$delta_layout" --tag v1 --json >/dev/null
"$tool" build "$demo/v2.tar" --format zstd:chunked --store "$delta_store" --layout "$delta_layout" --tag v2 --json >/dev/null
"$tool" push "$delta_layout:v1" "$registry/ml/python-delta:v1" --insecure --json >/dev/null
"$tool" push "$delta_layout:v2" "$registry/ml/python-delta:v2" --insecure --delta-store "$delta_store" \
  --json >"$demo/push-v2-delta.json"
"$tool" pull "$registry/ml/python-delta:v1" --store "$demo/pull-delta-store" --insecure --json >/dev/null
"$tool" pull "$registry/ml/python-delta:v2" --store "$demo/pull-delta-store" --insecure --json \
  >"$demo/pull-v2-delta.json"
models="$demo/model-layout"
"$tool" model package "$demo/model/base" --layout "$models" --tag base --json >/dev/null
"$tool" model package "$demo/model/tuned" --layout "$models" --tag tuned --json >/dev/null
"$tool" model push "$models:base" "$registry/models/tiny:base" --insecure --json >/dev/null
"$tool" model push "$models:tuned" "$registry/models/tiny:tuned" --insecure --json >/dev/null
"$tool" model pull "$registry/models/tiny:base" --store "$demo/model-store" --out "$demo/model-out/base" \
  --insecure --json >"$demo/model-pull-base.json"
"$tool" model pull "$registry/models/tiny:tuned" --store "$demo/model-store" --out "$demo/model-out/tuned" \
  --insecure --json >"$demo/model-pull-tuned.json"
cmp -s "$demo/model-out/tuned/model.safetensors" "$demo/model/tuned/model.safetensors" ||
  { echo "the pulled fine-tune differs from the pushed one" >&2; exit 1; }

# ---- 4. the report ----------------------------------------------------------------------------
python3 - "$demo" <<'PY'
import hashlib, json, os, sys
demo = sys.argv[1]
load = lambda name: json.load(open(f"{demo}/{name}.json"))
v1, v2, v2d = load("v1"), load("v2"), load("v2-delta")
mib = lambda n: f"{n / 2**20:8.1f} MiB"
def line(label, r):
    print(f"{label:<4} tar {mib(r['tar_bytes'])}  blob {mib(r['input_bytes'])}  new chunks {r['new_chunks']:>6}"
          f"  stored +{mib(r['new_stored_bytes'])}  {r['mb_per_second']:7.0f} MB/s")
print()
line("v1", v1)
line("v2", v2)
zstd_v2 = os.path.getsize(f"{demo}/v2.tar.zst")
added = v2["new_stored_bytes"] + v2["recipe_bytes"]
added_delta = v2d["new_stored_bytes"] + v2d["recipe_bytes"]
print(f"v2 as a plain zstd -3 layer:          {mib(zstd_v2)}  (what a registry stores and a client pulls today)")
print(f"v2 added to the strata store:         {mib(added)}  ({zstd_v2 / max(added, 1):.1f}x less)")
print(f"  ... with delta coding against v1:   {mib(added_delta)}  ({zstd_v2 / max(added_delta, 1):.1f}x less)")
total_tar = v1["tar_bytes"] + v2["tar_bytes"]
stored = v1["new_stored_bytes"] + v1["recipe_bytes"] + added
print(f"store dedup ratio (both layers):      {total_tar / max(stored, 1):.2f}x  ({mib(total_tar)} of tar in {mib(stored)})")

p1, p2 = load("pull-v1"), load("pull-v2")
print()
print("pulls from docker-registry on loopback (bytes on the wire, zstd:chunked layers):")
print(f"v1 into an empty store:               {mib(p1['bytes_fetched'])}  of a {mib(p1['layer_bytes'])} layer")
print(f"v2 holding v1:                        {mib(p2['bytes_fetched'])}  of a {mib(p2['layer_bytes'])} layer"
      f"  ({p2['fetched_percent']:.1f}%; a whole-layer pull fetches 100%)")
pd = load("pull-v2-delta")
print(f"v2 holding v1, with deltas:           {mib(pd['bytes_fetched'])}  of a {mib(pd['layer_bytes'])} layer"
      f"  ({sum(l['delta_chunks'] for l in pd['layers'])} chunks as deltas; {mib(pd['bytes_fetched_without_deltas'])} without)")
if pd["deltas"]["refused"]:
    print(f"  (delta referrer not used: {pd['deltas']['refused']})")
mb, mt = load("model-pull-base"), load("model-pull-tuned")
print(f"model (16 BF16 tensors) first pull:   {mib(mb['bytes_fetched'])}  of {mib(mb['total_bytes'])}")
print(f"its fine-tune (3 tensors changed):    {mib(mt['bytes_fetched'])}  of {mib(mt['total_bytes'])}"
      f"  ({100 * mt['bytes_fetched'] / max(mt['total_bytes'], 1):.1f}%), file identical to the pushed one")
h = hashlib.sha256()
with open(f"{demo}/v2.exported.tar", "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
        h.update(block)
exact = "sha256:" + h.hexdigest() == v2["diff_id"]
print()
print(f"export of v2 byte-exact:              {'yes' if exact else 'NO'} ({v2['diff_id'][:19]}...)")
sys.exit(0 if exact else 1)
PY
echo
"$tool" stats --store "$store"
"$tool" verify --store "$store"
"$tool" verify --store "$delta_store" >/dev/null && echo "delta store verified"
