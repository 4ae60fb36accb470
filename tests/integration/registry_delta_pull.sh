#!/usr/bin/env bash
# Deltas over the wire (docs/DELTA.md) end to end against a real docker-registry 2.8 on 127.0.0.1
# (no referrers API: the fallback tag sha256-<hex> of distribution-spec v1.1 carries the
# referrer). v1 = a few "libraries" of compressible bytes; v2 = the same files with a few bytes
# changed every ~40 KB (a rebuild: every chunk differs a little). The pusher's store ingests v1,
# then v2 with --delta-base auto; both images are built as zstd:chunked from that store and pushed,
# v2 with --delta-store. A client holding v1 pulls v2 twice from copies of one store: with the
# referrer and with --no-deltas. Checks: the referrer was pushed and found, chunks came as deltas,
# fewer bytes crossed the wire with deltas than without, the pulled v2 exports byte-identical to
# v2.tar and the store verifies clean; skopeo still copies the image. Then a tampered referrer
# (a frames blob whose bytes decode to the wrong chunk, index and manifest consistent with it, put
# with the registry's plain upload API) must not break the pull: each bad delta is replaced by its
# chunk and the export is still byte-identical. A hostile index (a chunk its own base) is refused
# with the reason in --json and the pull goes on without deltas.
# A missing tool makes the test skip (exit 77) with its name.
set -euo pipefail

strata=${1:?usage: registry_delta_pull.sh STRATA}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=registry_env.sh
. "$here/registry_env.sh"
registry_env_require docker-registry skopeo curl python3 tar cmp
registry_env_init strata-delta-pull
[ -n "${STRATA_KEEP_WORK:-}" ] && trap - EXIT

# ---- v1 / v2 trees --------------------------------------------------------------------------------
python3 - "$work" <<'PY'
import os, random, sys
work = sys.argv[1]
rng = random.Random(16)
words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz_0123456789") for _ in range(rng.randint(3, 12)))
         for _ in range(4000)]
for version in ("v1", "v2"):
    os.makedirs(f"{work}/{version}/usr/lib", exist_ok=True)
for name, size in (("libone.so", 1_500_000), ("libtwo.so", 900_000), ("libthree.so", 600_000)):
    out = bytearray()
    while len(out) < size:
        out += rng.choice(words) + bytes([rng.randrange(256)]) + rng.choice(words) + b"\0"
    v1 = bytes(out[:size])
    v2 = bytearray(v1)
    for at in range(1000, size, 40_000):  # a rebuilt library: small changes all over
        v2[at:at + 4] = rng.randbytes(4)
    open(f"{work}/v1/usr/lib/{name}", "wb").write(v1)
    open(f"{work}/v2/usr/lib/{name}", "wb").write(bytes(v2))
open(f"{work}/v1/usr/lib/os-release", "w").write("VERSION=1\n")
open(f"{work}/v2/usr/lib/os-release", "w").write("VERSION=2\n")
PY
for v in v1 v2; do
  tar --sort=name --format=pax --pax-option=delete=atime,delete=ctime --mtime=@0 --owner=0 \
    --group=0 -C "$work/$v" -cf "$work/$v.tar" .
done

# ---- pusher: store with v2 as deltas, images built from it ---------------------------------------
pusher="$work/pusher-store" layout="$work/layout"
"$strata" ingest --store "$pusher" "$work/v1.tar" >/dev/null
"$strata" build "$work/v1.tar" --format zstd:chunked --store "$pusher" --layout "$layout" --tag v1 >/dev/null
"$strata" ingest --json --store "$pusher" --delta-base auto "$work/v2.tar" >"$work/ingest-v2.json"
"$strata" build "$work/v2.tar" --format zstd:chunked --store "$pusher" --layout "$layout" --tag v2 >/dev/null
deltas_stored=$(json_field "$work/ingest-v2.json" '(d[0] if isinstance(d, list) else d)["delta_chunks"]')
[ "$deltas_stored" -gt 0 ] || { echo "FAIL: the pusher's ingest stored no deltas"; exit 1; }

start_registry plain
reg="127.0.0.1:$port"
"$strata" push "$layout:v1" "$reg/strata/delta:v1" --insecure >/dev/null
"$strata" push "$layout:v2" "$reg/strata/delta:v2" --insecure --delta-store "$pusher" --json \
  >"$work/push-v2.json"
shipped=$(json_field "$work/push-v2.json" 'd["delta_referrer"]["delta_chunks"]')
prefixed=$(json_field "$work/push-v2.json" 'd["delta_referrer"]["prefix_chunks"]')
[ "$prefixed" -gt 0 ] || { echo "FAIL: no delta was coded with its base's neighbours"; exit 1; }
where=$(json_field "$work/push-v2.json" 'd["delta_referrer"]["referrers"]')
[ "$shipped" -gt 0 ] || { echo "FAIL: the referrer ships no deltas"; exit 1; }
[ "$where" = tag ] || { echo "FAIL: docker-registry 2.8 needs the fallback tag, push said '$where'"; exit 1; }
echo "pushed v2 with a delta referrer of $shipped chunks (store held $deltas_stored as deltas)"

# Other clients keep working with the same image (the referrer is a tag they do not ask for).
skopeo --insecure-policy copy --quiet --src-tls-verify=false "docker://$reg/strata/delta:v2" \
  "oci:$work/skopeo-out:v2"

# ---- receiver: v1, then v2 with and without deltas ------------------------------------------------
"$strata" pull "$reg/strata/delta:v1" --store "$work/r-delta" --insecure >/dev/null
cp -a "$work/r-delta" "$work/r-plain"
cp -a "$work/r-delta" "$work/r-tampered"
cp -a "$work/r-delta" "$work/r-hostile"
"$strata" pull "$reg/strata/delta:v2" --store "$work/r-delta" --insecure --json >"$work/pull-delta.json"
"$strata" pull "$reg/strata/delta:v2" --store "$work/r-plain" --insecure --json --no-deltas \
  >"$work/pull-plain.json"
with=$(json_field "$work/pull-delta.json" 'd["bytes_fetched"]')
without=$(json_field "$work/pull-plain.json" 'd["bytes_fetched"]')
estimate=$(json_field "$work/pull-delta.json" 'd["bytes_fetched_without_deltas"]')
referrer=$(json_field "$work/pull-delta.json" 'd["deltas"]["referrer"]')
used=$(json_field "$work/pull-delta.json" 'd["layers"][0]["delta_chunks"]')
[ "$referrer" = tag ] || { echo "FAIL: pull did not find the referrer through the fallback tag"; exit 1; }
[ "$used" -gt 0 ] || { echo "FAIL: no chunk came as a delta"; exit 1; }
[ "$with" -lt "$without" ] || { echo "FAIL: $with bytes with deltas, $without without"; exit 1; }
echo "v2 pulled with $used deltas: $with bytes on the wire, $without without deltas" \
  "(the pull's own estimate without: $estimate)"

diff_id=$(json_field "$work/pull-delta.json" 'd["layers"][0]["diff_id"]')
for store in r-delta r-plain; do
  "$strata" export --store "$work/$store" "$diff_id" -o "$work/$store.tar" >/dev/null
  cmp "$work/$store.tar" "$work/v2.tar" || { echo "FAIL: $store export differs from v2.tar"; exit 1; }
  "$strata" verify --store "$work/$store" >/dev/null || { echo "FAIL: $store does not verify"; exit 1; }
done

# ---- a tampered referrer and a hostile one --------------------------------------------------------
# repush REPO MODE: v2 (its blobs and manifest) under REPO, with a referrer made from the pusher's
# layout by MODE ("flip": a byte of every delta flipped; "self": a chunk named as its own base),
# uploaded with the plain distribution API.
repush() {
  "$strata" push "$layout:v2" "$reg/$1:v2" --insecure >/dev/null
  python3 - "$layout" "http://$reg" "$1" "$2" <<'PY'
import hashlib, json, sys, urllib.request
layout, base, repo, mode = sys.argv[1:5]
def blob(digest): return open(f"{layout}/blobs/sha256/{digest[7:]}", "rb").read()
def digest(data): return "sha256:" + hashlib.sha256(data).hexdigest()
def upload(data):
    req = urllib.request.Request(f"{base}/v2/{repo}/blobs/uploads/", method="POST")
    location = urllib.request.urlopen(req).headers["Location"]
    if location.startswith("/"): location = base + location
    sep = "&" if "?" in location else "?"
    req = urllib.request.Request(f"{location}{sep}digest={digest(data)}", data=data, method="PUT",
                                 headers={"Content-Type": "application/octet-stream"})
    urllib.request.urlopen(req)
    return {"digest": digest(data), "size": len(data)}
def put_manifest(ref, media_type, data):
    req = urllib.request.Request(f"{base}/v2/{repo}/manifests/{ref}", data=data, method="PUT",
                                 headers={"Content-Type": media_type})
    urllib.request.urlopen(req)
index = json.load(open(f"{layout}/index.json"))
subject = [m for m in index["manifests"]
           if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == "v2"][0]["digest"]
tagged = [m for m in index["manifests"]
          if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == "sha256-" + subject[7:]][0]
referrer = json.loads(blob(tagged["digest"]))
idx_desc, frames_desc = referrer["layers"]
delta_index = json.loads(blob(idx_desc["digest"]))
frames = bytearray(blob(frames_desc["digest"]))
if mode == "flip":
    for chunk in delta_index["chunks"]:
        frames[chunk[3] + chunk[4] // 2] ^= 0x5A
else:
    delta_index["chunks"][0][1] = delta_index["chunks"][0][0]
frames_new = upload(bytes(frames))
delta_index["frames"] = frames_new
index_bytes = json.dumps(delta_index).encode()
idx_new = upload(index_bytes)
upload(b"{}")
referrer["layers"] = [dict(idx_desc, **idx_new), dict(frames_desc, **frames_new)]
manifest_bytes = json.dumps(referrer).encode()
put_manifest(digest(manifest_bytes), "application/vnd.oci.image.manifest.v1+json", manifest_bytes)
fallback = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "digest": digest(manifest_bytes), "size": len(manifest_bytes),
                           "artifactType": "application/vnd.strata.delta.v1"}]}
put_manifest("sha256-" + subject[7:], "application/vnd.oci.image.index.v1+json",
             json.dumps(fallback).encode())
PY
}
repush strata/tampered flip
"$strata" pull "$reg/strata/tampered:v2" --store "$work/r-tampered" --insecure --json \
  >"$work/pull-tampered.json"
fallbacks=$(json_field "$work/pull-tampered.json" 'd["layers"][0]["delta_fallbacks"]')
[ "$fallbacks" -gt 0 ] || { echo "FAIL: tampered deltas were not replaced by their chunks"; exit 1; }
"$strata" export --store "$work/r-tampered" "$diff_id" -o "$work/tampered.tar" >/dev/null
cmp "$work/tampered.tar" "$work/v2.tar" || { echo "FAIL: tampered pull exports wrong bytes"; exit 1; }
"$strata" verify --store "$work/r-tampered" >/dev/null

repush strata/hostile self
"$strata" pull "$reg/strata/hostile:v2" --store "$work/r-hostile" --insecure --json \
  >"$work/pull-hostile.json"
refused=$(json_field "$work/pull-hostile.json" 'd["deltas"]["refused"]')
case "$refused" in
  *"names itself as its base"*) ;;
  *) echo "FAIL: hostile index not refused with its reason (got '$refused')"; exit 1 ;;
esac
[ "$(json_field "$work/pull-hostile.json" 'd["layers"][0]["delta_chunks"]')" = 0 ]
"$strata" export --store "$work/r-hostile" "$diff_id" -o "$work/hostile.tar" >/dev/null
cmp "$work/hostile.tar" "$work/v2.tar"
echo "tampered deltas: $fallbacks replaced by their chunks; hostile index refused: $refused"

# --delta-level 0 ships the store's frames as they are (made at the ingest's level 3, one base):
# the default (-19, with the base's neighbours as prefix) ships fewer bytes.
"$strata" push "$layout:v2" "$reg/strata/level0:v2" --insecure --delta-store "$pusher" \
  --delta-level 0 --json >"$work/push-level0.json"
frames19=$(json_field "$work/push-v2.json" 'd["delta_referrer"]["frames_bytes"]')
frames0=$(json_field "$work/push-level0.json" 'd["delta_referrer"]["frames_bytes"]')
[ "$(json_field "$work/push-level0.json" 'd["delta_referrer"]["prefix_chunks"]')" = 0 ]
[ "$frames19" -lt "$frames0" ] || { echo "FAIL: frames $frames19 at -19 vs $frames0 as stored"; exit 1; }
echo "referrer frames: $frames19 bytes at -19 with prefixes ($prefixed chunks), $frames0 as stored"
echo "PASS"
