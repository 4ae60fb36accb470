#!/usr/bin/env bash
# `strata push` / `strata pull` against real registries on 127.0.0.1 (shared/specs/
# layer-formats.md §3; docker-registry 2.8.2 from Debian 12, filesystem backend in a temp dir):
#   1. images built by `strata build` are pushed; skopeo inspect sees strata's digests and
#      skopeo copy reads them back into an OCI layout whose blobs hash to their names;
#   2. a second push sends no blob; a push to another repository with --mount-from mounts all;
#   3. strata pull into an empty store and into a warm one; exported tars equal the layers'
#      decompressed bytes (gzip -dc / zstd -dc, independent tools) and their diff_ids;
#      --layout writes an image umoci-independent checks accept (skopeo reads it back);
#   4. a registry behind htpasswd (bcrypt line made by python3's crypt): no creds fails,
#      --creds and an auth.json both work; the proxy in bearer mode (Docker token protocol):
#      tokens requested with Basic credentials for the push/pull scope;
#   5. the fault proxy (registry_fault_proxy.py): a pull survives dropped connections, a corrupt
#      blob is refused with digest_mismatch; then the RegistryLive gtest suite runs against both;
#   6. wall time of strata push/pull vs skopeo copy of the same image (printed, not asserted).
# A missing tool makes the test skip (exit 77) with its name.
set -euo pipefail

strata=${1:?usage: registry_push_pull.sh STRATA LIVE_TEST_BINARY}
live_test=${2:?usage: registry_push_pull.sh STRATA LIVE_TEST_BINARY}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=registry_env.sh
. "$here/registry_env.sh"
registry_env_require skopeo docker-registry curl python3 gzip zstd
registry_env_init strata-registry

# ---- images -------------------------------------------------------------------------------------
src="$work/src"
mkdir -p "$src/a/etc" "$src/b/data"
printf 'hello\n' >"$src/a/etc/hello.txt"
head -c 400000 /dev/urandom >"$src/a/etc/random.bin"
head -c 2000000 /dev/urandom >"$src/b/data/weights.bin"
mkdir -p "$src/c/data"
cp "$src/b/data/weights.bin" "$src/c/data/weights.bin"
printf 'new in v2\n' >"$src/c/data/notes.txt"
layout="$work/layout"
"$strata" build "$src/a" "$src/b" --layout "$layout" --tag gz --format gzip --json >"$work/gz.json"
"$strata" build "$src/a" "$src/b" --layout "$layout" --tag zs --format zstd --json >"$work/zs.json"
"$strata" build "$src/a" "$src/c" --layout "$layout" --tag v2 --format gzip --json >"$work/v2.json"

start_registry plain
reg="127.0.0.1:$port"

# ---- 1. push, skopeo reads it -------------------------------------------------------------------
for tag in gz zs; do
  "$strata" push "$layout:$tag" "$reg/strata/app:$tag" --insecure --json >"$work/push-$tag.json"
  manifest=$(json_field "$work/$tag.json" 'd["manifest_digest"]')
  pushed=$(json_field "$work/push-$tag.json" 'd["manifest_digest"]')
  [ "$pushed" = "$manifest" ] || { echo "FAIL push $tag reports $pushed, layout has $manifest"; exit 1; }
  skopeo inspect --tls-verify=false "docker://$reg/strata/app:$tag" >"$work/inspect-$tag.json"
  [ "$(json_field "$work/inspect-$tag.json" 'd["Digest"]')" = "$manifest" ] || { echo "FAIL inspect $tag"; exit 1; }
  [ "$(json_field "$work/inspect-$tag.json" 'd["Layers"]')" = "$(json_field "$work/$tag.json" '[l["digest"] for l in d["layers"]]')" ] \
    || { echo "FAIL inspect $tag layers"; exit 1; }
  skopeo --insecure-policy copy --quiet --src-tls-verify=false "docker://$reg/strata/app:$tag" "oci:$work/skopeo-copy:$tag"
  for blob in "$work"/skopeo-copy/blobs/sha256/*; do
    [ "$(sha256sum "$blob" | cut -d' ' -f1)" = "$(basename "$blob")" ] || { echo "FAIL blob $blob"; exit 1; }
  done
  echo "ok: strata push $tag; skopeo inspect + copy read it ($manifest)"
done

# ---- 2. second push skips everything; mount into another repository ----------------------------
"$strata" push "$layout:gz" "$reg/strata/app:gz" --insecure --json >"$work/push-again.json"
[ "$(json_field "$work/push-again.json" 'd["blobs_uploaded"]')" = 0 ] || { echo "FAIL second push uploaded blobs"; exit 1; }
[ "$(json_field "$work/push-again.json" 'd["bytes_uploaded"]')" = 0 ] || { echo "FAIL second push bytes"; exit 1; }
"$strata" push "$layout:gz" "$reg/strata/other:gz" --insecure --mount-from strata/app --json >"$work/push-mount.json"
[ "$(json_field "$work/push-mount.json" 'd["blobs_mounted"]')" = 3 ] || { cat "$work/push-mount.json"; echo "FAIL mount"; exit 1; }
"$strata" push "$layout:zs" "$reg/strata/chunked:zs" --insecure --chunk-size 65536 --json >"$work/push-chunked.json"
[ "$(json_field "$work/push-chunked.json" 'd["blobs_uploaded"]')" = 3 ] || { echo "FAIL chunked push"; exit 1; }
skopeo inspect --tls-verify=false "docker://$reg/strata/chunked:zs" >/dev/null
echo "ok: second push sent 0 blobs; --mount-from mounted 3; chunked (PATCH) upload accepted"

# ---- 3. pull into an empty and a warm store ------------------------------------------------------
check_store_layers() {  # STORE TAG: every layer exports to its decompressed blob
  local store=$1 tag=$2 i=0 digest
  for digest in $(json_field "$work/$tag.json" '" ".join(l["digest"] for l in d["layers"])'); do
    diff_id=$(json_field "$work/$tag.json" "d['layers'][$i]['diff_id']")
    "$strata" export --store "$store" "$diff_id" -o "$work/export.tar" >/dev/null
    [ "sha256:$(sha256sum "$work/export.tar" | cut -d' ' -f1)" = "$diff_id" ] || { echo "FAIL export $digest"; exit 1; }
    blob="$layout/blobs/sha256/${digest#sha256:}"
    if [ "$tag" != zs ]; then gzip -dc "$blob" >"$work/expected.tar"; else zstd -qdc "$blob" >"$work/expected.tar"; fi
    cmp "$work/export.tar" "$work/expected.tar" || { echo "FAIL export differs from decompressed blob"; exit 1; }
    i=$((i + 1))
  done
}
"$strata" pull "$reg/strata/app:gz" --store "$work/store" --insecure --layout "$work/pulled" --json >"$work/pull-gz.json"
check_store_layers "$work/store" gz
[ "$(json_field "$work/pull-gz.json" 'd["manifest_digest"]')" = "$(json_field "$work/gz.json" 'd["manifest_digest"]')" ] || { echo "FAIL pull digest"; exit 1; }
skopeo --insecure-policy copy --quiet "oci:$work/pulled:gz" "oci:$work/recopied:gz"
echo "ok: pull into an empty store: exports equal the decompressed blobs; --layout readable by skopeo"
"$strata" pull "$reg/strata/app:zs" --store "$work/store" --insecure --json >"$work/pull-zs.json"
check_store_layers "$work/store" zs
[ "$(json_field "$work/pull-zs.json" 'all(l["already_present"] for l in d["layers"])')" = True ] || { echo "FAIL same diff_ids pulled again"; exit 1; }
"$strata" push "$layout:v2" "$reg/strata/app:v2" --insecure --json >"$work/push-v2.json"
[ "$(json_field "$work/push-v2.json" 'd["blobs_skipped"]')" = 1 ] || { echo "FAIL v2 push should skip the shared layer"; exit 1; }
"$strata" pull "$reg/strata/app:v2" --store "$work/store" --insecure --json >"$work/pull-v2.json"
check_store_layers "$work/store" v2
stored=$(json_field "$work/pull-v2.json" 'sum(l["new_stored_bytes"] for l in d["layers"])')
[ "$stored" -lt 100000 ] || { echo "FAIL warm pull of v2 stored $stored new bytes (weights should dedup)"; exit 1; }
echo "ok: warm store: same diff_ids not fetched ($(json_field "$work/pull-zs.json" 'd["bytes_fetched"]') B); v2 stored only $stored new bytes"

# ---- 4. basic auth (htpasswd with a bcrypt line) -------------------------------------------------
if hash_line=$(python3 -W ignore -c 'import crypt; print("tester:" + crypt.crypt("s3cret", crypt.mksalt(crypt.METHOD_BLOWFISH)))' 2>/dev/null) \
    && [[ "$hash_line" == tester:\$2* ]]; then
  echo "$hash_line" >"$work/htpasswd"
  start_registry authed "auth: {htpasswd: {realm: strata-test, path: $work/htpasswd}}"
  areg="127.0.0.1:$port"
  if "$strata" push "$layout:gz" "$areg/strata/app:gz" --insecure 2>"$work/noauth.err"; then
    echo "FAIL push without credentials succeeded"; exit 1
  fi
  grep -q "credentials" "$work/noauth.err" || { cat "$work/noauth.err"; echo "FAIL no-creds message"; exit 1; }
  "$strata" push "$layout:gz" "$areg/strata/app:gz" --insecure --creds tester:s3cret >/dev/null
  if "$strata" pull "$areg/strata/app:gz" --store "$work/store-auth" --insecure --creds tester:wrong 2>/dev/null; then
    echo "FAIL wrong password accepted"; exit 1
  fi
  mkdir -p "$XDG_RUNTIME_DIR/containers"
  printf '{"auths":{"%s":{"auth":"%s"}}}' "$areg" "$(printf tester:s3cret | base64)" >"$XDG_RUNTIME_DIR/containers/auth.json"
  "$strata" pull "$areg/strata/app:gz" --store "$work/store-auth" --insecure >/dev/null
  skopeo inspect --tls-verify=false --creds tester:s3cret "docker://$areg/strata/app:gz" >/dev/null
  echo "ok: htpasswd registry: refused without creds, --creds and auth.json work"
else
  echo "SKIP (basic auth only): python3 crypt cannot make a bcrypt line"
fi

# ---- 5. fault proxy -------------------------------------------------------------------------------
start_fault_proxy "${reg#*:}" proxy
faults=$proxy
"$strata" pull "$proxy/strata/app:gz" --store "$work/store-proxy" --insecure --json >"$work/pull-proxy.json"
[ "$(json_field "$work/pull-proxy.json" 'd["retries"]')" -ge 1 ] || { echo "FAIL no retry through the proxy"; exit 1; }
grep -q dropped "$work/proxy.log" || { echo "FAIL proxy dropped nothing"; exit 1; }
check_store_layers "$work/store-proxy" gz
"$strata" push "$layout:gz" "$reg/strata/corrupt:gz" --insecure --mount-from strata/app >/dev/null
if "$strata" pull "$proxy/strata/corrupt:gz" --store "$work/store-corrupt" --insecure 2>"$work/corrupt.err"; then
  echo "FAIL corrupt blob accepted"; exit 1
fi
grep -q "hash to" "$work/corrupt.err" || { cat "$work/corrupt.err"; echo "FAIL corrupt message"; exit 1; }
echo "ok: pull through the proxy survives dropped connections; corrupt blob refused: $(head -c 200 "$work/corrupt.err")"
# Bearer tokens: the proxy in "bearer" mode plays a token-authenticated registry.
start_fault_proxy "${reg#*:}" bearer bearer
bearer=$proxy
if "$strata" push "$layout:gz" "$bearer/strata/bearer:gz" --insecure 2>"$work/bearer.err"; then
  echo "FAIL push to the bearer registry without credentials succeeded"; exit 1
fi
"$strata" push "$layout:v2" "$bearer/strata/bearer:v2" --insecure --creds tester:s3cret --json >"$work/push-bearer.json"
grep -q "token scopes=\['repository:strata/bearer:pull,push'\]" "$work/bearer.log" || { cat "$work/bearer.log"; echo "FAIL push token scope"; exit 1; }
"$strata" pull "$bearer/strata/bearer:v2" --store "$work/store-bearer" --insecure --creds tester:s3cret >/dev/null
check_store_layers "$work/store-bearer" v2
skopeo inspect --tls-verify=false --creds tester:s3cret "docker://$bearer/strata/bearer:v2" >/dev/null
echo "ok: bearer-token registry: refused without creds; push and pull with a token; skopeo agrees"
STRATA_TEST_REGISTRY="$reg" STRATA_TEST_PROXY="$faults" "$live_test" --gtest_brief=1
grep -q "multi-range-as-200" "$work/proxy.log" || { echo "FAIL live tests sent no multi-range through the proxy"; exit 1; }

# ---- 6. figures: strata vs skopeo, same registry, same run ---------------------------------------
t0=$(now); "$strata" push "$layout:gz" "$reg/bench/strata:gz" --insecure --json >"$work/bench-push.json"; t1=$(now)
skopeo --insecure-policy copy --quiet --dest-tls-verify=false "oci:$layout:gz" "docker://$reg/bench/skopeo:gz"; t2=$(now)
"$strata" pull "$reg/bench/strata:gz" --store "$work/bench-store" --insecure --json >"$work/bench-pull.json"; t3=$(now)
skopeo --insecure-policy copy --quiet --src-tls-verify=false "docker://$reg/bench/skopeo:gz" "oci:$work/bench-layout:gz"; t4=$(now)
echo "figures: image of $(json_field "$work/gz.json" 'sum(l["size"] for l in d["layers"])') layer bytes"
echo "figures: push strata $(elapsed "$t0" "$t1")s (sent $(json_field "$work/bench-push.json" 'd["wire_bytes_sent"]') B), skopeo copy $(elapsed "$t1" "$t2")s"
echo "figures: pull strata (fetch+verify+ingest) $(elapsed "$t2" "$t3")s (received $(json_field "$work/bench-pull.json" 'd["bytes_fetched"]') B), skopeo copy to oci: $(elapsed "$t3" "$t4")s"
echo "PASS"
