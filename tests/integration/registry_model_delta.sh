#!/usr/bin/env bash
# Model fine-tunes pulled as deltas (docs/DELTA.md, issue 16) end to end against a real
# docker-registry 2.8 on 127.0.0.1 (no referrers API: the fallback tag sha256-<hex> lists both the
# chunk index and the delta referrer). A BF16 safetensors base and a full fine-tune (every value
# moved by N(0, 0.02 std), python3) are packaged through one pusher store, the fine-tune with
# --delta-base auto; both are pushed, the fine-tune with --delta-store. A client that pulled the
# base pulls the fine-tune into two copies of its store, with the referrer and with --no-deltas:
# the referrer is found through the tag, chunks come as deltas, far fewer bytes cross the wire,
# the pull's own "without deltas" figure equals the real pull without, both files equal the
# source (cmp) and both stores verify clean; skopeo still reads the model. Then every delta in the
# registry's frames blob is flipped on disk: a third copy's pull replaces each bad delta by its
# chunk and the file is still byte-identical. A missing tool makes the test skip (exit 77).
set -euo pipefail

strata=${1:?usage: registry_model_delta.sh STRATA}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=registry_env.sh
. "$here/registry_env.sh"
registry_env_require docker-registry skopeo curl python3 cmp
registry_env_init strata-model-delta
[ -n "${STRATA_KEEP_WORK:-}" ] && trap - EXIT

python3 - "$work" <<'PY'
import json, os, random, struct, sys
work = sys.argv[1]
def bf16(x):  # round to nearest even, as the fine-tune tools do
    bits = struct.unpack("<I", struct.pack("<f", x))[0]
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) & 0xFFFF
def f32(h): return struct.unpack("<f", struct.pack("<I", h << 16))[0]
rng, noise = random.Random(16), random.Random(17)
tensors = {"embed": 192 * 1024, "q_proj": 64 * 1024, "down_proj": 96 * 1024}
for version in ("base", "tuned"):
    os.makedirs(f"{work}/{version}", exist_ok=True)
header, data = {}, {"base": bytearray(), "tuned": bytearray()}
for name, count in tensors.items():
    std = 0.02 * rng.uniform(0.5, 2)
    start = len(data["base"])
    for _ in range(count):
        w = bf16(rng.gauss(0, std))
        data["base"] += struct.pack("<H", w)
        data["tuned"] += struct.pack("<H", bf16(f32(w) + noise.gauss(0, 0.02 * std)))
    header[name] = {"dtype": "BF16", "shape": [count], "data_offsets": [start, len(data["base"])]}
text = json.dumps(header, separators=(",", ":")).encode()
text += b" " * (-len(text) % 8)
for version in ("base", "tuned"):
    with open(f"{work}/{version}/model.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + bytes(data[version]))
    with open(f"{work}/{version}/config.json", "w") as f:
        f.write('{"architectures": ["Tiny"]}\n')
PY

# ---- pusher ---------------------------------------------------------------------------------------
pusher="$work/pusher" layout="$work/layout"
"$strata" model package "$work/base" --layout "$layout" --tag base --store "$pusher" \
  --avg-chunk 16384 >/dev/null
"$strata" model package "$work/tuned" --layout "$layout" --tag tuned --store "$pusher" \
  --avg-chunk 16384 --delta-base auto --json >"$work/package-tuned.json"
[ "$(json_field "$work/package-tuned.json" 'd["delta_chunks"]')" -gt 0 ] ||
  { echo "FAIL: the fine-tune was stored without deltas"; exit 1; }
start_registry plain
reg="127.0.0.1:$port"
"$strata" model push "$layout:base" "$reg/models/tiny:base" --insecure >/dev/null
"$strata" model push "$layout:tuned" "$reg/models/tiny:tuned" --insecure --delta-store "$pusher" \
  --json >"$work/push.json"
shipped=$(json_field "$work/push.json" 'd["delta_referrer"]["delta_chunks"]')
[ "$shipped" -gt 0 ] || { echo "FAIL: the referrer ships no deltas"; exit 1; }
[ "$(json_field "$work/push.json" 'd["delta_referrer"]["referrers"]')" = tag ] ||
  { echo "FAIL: docker-registry 2.8 needs the fallback tag"; exit 1; }
[ "$(json_field "$work/push.json" 'd["referrers"]')" = tag ] ||
  { echo "FAIL: the chunk index is no longer published"; exit 1; }
skopeo inspect --raw --tls-verify=false "docker://$reg/models/tiny:tuned" >/dev/null
echo "ok: pushed the fine-tune with a delta referrer of $shipped chunks"

# ---- client ---------------------------------------------------------------------------------------
"$strata" model pull "$reg/models/tiny:base" --store "$work/with" --insecure >/dev/null
cp -a "$work/with" "$work/without"
cp -a "$work/with" "$work/tampered"
"$strata" model pull "$reg/models/tiny:tuned" --store "$work/with" --out "$work/out-with" \
  --insecure --json >"$work/with.json"
"$strata" model pull "$reg/models/tiny:tuned" --store "$work/without" --out "$work/out-without" \
  --insecure --json --no-deltas >"$work/without.json"
[ "$(json_field "$work/with.json" 'd["deltas"]["referrer"]')" = tag ] ||
  { echo "FAIL: the pull did not find the referrer through the fallback tag"; exit 1; }
used=$(json_field "$work/with.json" 'd["deltas"]["chunks"]')
[ "$used" = "$shipped" ] || { echo "FAIL: $used of $shipped chunks came as deltas"; exit 1; }
with=$(json_field "$work/with.json" 'd["wire_bytes_received"]')
without=$(json_field "$work/without.json" 'd["wire_bytes_received"]')
[ $((with * 2)) -lt "$without" ] || { echo "FAIL: $with wire bytes with deltas, $without without"; exit 1; }
estimate=$(json_field "$work/with.json" 'd["bytes_fetched_without_deltas"]')
[ "$estimate" = "$(json_field "$work/without.json" 'd["bytes_fetched"]')" ] ||
  { echo "FAIL: the pull's estimate without deltas ($estimate) is not the pull without"; exit 1; }
for mode in with without; do
  for file in model.safetensors config.json; do
    cmp "$work/out-$mode/$file" "$work/tuned/$file" || { echo "FAIL: $mode: $file differs"; exit 1; }
  done
  "$strata" verify --store "$work/$mode" >/dev/null || { echo "FAIL: $mode store does not verify"; exit 1; }
done
echo "ok: fine-tune pulled with $used deltas: $with bytes on the wire, $without without"

# ---- every delta flipped in the registry's frames blob ------------------------------------------
frames=$(python3 -c "import json,sys; \
r=json.load(open(sys.argv[1])); print(r['layers'][1]['digest'][7:])" \
  "$layout/blobs/sha256/$(json_field "$work/push.json" 'd["delta_referrer"]["digest"][7:]')")
data="$work/plain/docker/registry/v2/blobs/sha256/${frames:0:2}/$frames/data"
[ -f "$data" ] || { echo "FAIL: frames blob not found in the registry: $data"; exit 1; }
python3 - "$data" <<'PY'
import sys
path = sys.argv[1]
data = bytearray(open(path, "rb").read())
for at in range(0, len(data), 97):
    data[at] ^= 0x5A
open(path, "wb").write(bytes(data))
PY
"$strata" model pull "$reg/models/tiny:tuned" --store "$work/tampered" --out "$work/out-tampered" \
  --insecure --json >"$work/tampered.json"
fallbacks=$(json_field "$work/tampered.json" 'd["deltas"]["fallbacks"]')
[ "$fallbacks" -gt 0 ] || { echo "FAIL: tampered deltas were not replaced by their chunks"; exit 1; }
cmp "$work/out-tampered/model.safetensors" "$work/tuned/model.safetensors" ||
  { echo "FAIL: the tampered pull wrote other bytes"; exit 1; }
"$strata" verify --store "$work/tampered" >/dev/null
echo "ok: tampered frames: $fallbacks deltas replaced by their chunks, file byte-identical"
