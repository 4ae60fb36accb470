#!/usr/bin/env bash
# Remote chunk stores (`--store registry://HOST/REPO`, docs/remote-store.md) against a real
# docker-registry on 127.0.0.1; each "machine" is its own empty cache directory:
#   1. machine A ingests layer v1 and publishes generation 1;
#   2. machine B (empty cache) ingests v2 of the same layer: it pushes only the chunks the
#      registry lacks (most are deduplicated against A's packs);
#   3. machine C (empty cache) exports both byte-exactly (sha256sum of the tars, an independent
#      tool, equals the originals'), fetching chunks with range GETs; a second export fetches none;
#   4. machines D and E ingest two other layers at the same time: both end up in the catalogue;
#   5. verify reads back every record; gc is refused; a pack blob corrupted on the registry's disk
#      is reported by verify and refused by export (chunks are trusted only after SHA-256).
# Prints the bytes pushed per ingest and fetched per export. A missing tool skips (exit 77).
set -euo pipefail

strata=${1:?usage: remote_store.sh STRATA}
here=$(cd "$(dirname "$0")" && pwd)
for tool in docker-registry curl python3 tar sha256sum; do
  if ! command -v "$tool" >/dev/null; then
    echo "SKIP: $tool is not installed (scripts/install-deps.sh installs it)"
    exit 77
  fi
done
# shellcheck source=registry_env.sh
source "$here/registry_env.sh"
registry_env_init remote-store
start_registry registry
store="registry://127.0.0.1:$port/team/store"
json_field() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }
fail() { echo "FAIL: $*"; exit 1; }
# on MACHINE COMMAND ARGS...: the tool against the remote store with MACHINE's own cache.
on() {
  local machine=$1 command=$2
  shift 2
  "$strata" "$command" --store "$store" --insecure --cache "$work/machine-$machine" "$@"
}

# ---- layers: v2 rewrites 64 KiB in the middle of v1's 3 MiB file and adds a file ---------------
make_tar() { tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$1" -cf "$2" .; }
mkdir -p "$work/v1/data" "$work/v3" "$work/v4"
head -c 3145728 /dev/urandom >"$work/v1/data/weights.bin"
printf 'version 1\n' >"$work/v1/data/notes.txt"
cp -r "$work/v1" "$work/v2"
head -c 65536 /dev/urandom | dd of="$work/v2/data/weights.bin" bs=65536 seek=24 conv=notrunc 2>/dev/null
printf 'version 2\n' >"$work/v2/data/notes.txt"
printf 'added in v2\n' >"$work/v2/data/added.txt"
head -c 1048576 /dev/urandom >"$work/v3/three.bin"
head -c 1048576 /dev/urandom >"$work/v4/four.bin"
for v in v1 v2 v3 v4; do make_tar "$work/$v" "$work/$v.tar"; done
diff_id() { echo "sha256:$(sha256sum "$1" | cut -d' ' -f1)"; }

# ---- 1. machine A ingests v1 --------------------------------------------------------------------
on A ingest --json "$work/v1.tar" >"$work/a.json"
a_pushed=$(json_field "$work/a.json" 'd["publish"]["pack_bytes_pushed"]')
a_chunks=$(json_field "$work/a.json" 'd["publish"]["chunks_pushed"]')
[ "$(json_field "$work/a.json" 'd["publish"]["generation"]')" = 1 ] || fail "A did not publish generation 1"
[ "$a_chunks" -gt 0 ] || fail "A pushed no chunks"
echo "machine A: ingest v1 pushed $a_chunks chunks, $a_pushed pack bytes"

# ---- 2. machine B ingests v2 from an empty cache ------------------------------------------------
on B ingest --json "$work/v2.tar" >"$work/b.json"
b_pushed=$(json_field "$work/b.json" 'd["publish"]["pack_bytes_pushed"]')
b_chunks=$(json_field "$work/b.json" 'd["publish"]["chunks_pushed"]')
b_dedup=$(json_field "$work/b.json" 'd["publish"]["chunks_deduplicated"]')
[ "$(json_field "$work/b.json" 'd["publish"]["generation"]')" = 2 ] || fail "B did not publish generation 2"
[ "$b_dedup" -gt 0 ] || fail "B deduplicated nothing against A's packs"
[ $((b_pushed * 4)) -lt "$a_pushed" ] || fail "B pushed $b_pushed bytes, not much less than A's $a_pushed"
echo "machine B: ingest v2 pushed $b_chunks chunks, $b_pushed pack bytes ($b_dedup chunks already in the registry)"

# ---- 3. machine C exports both from an empty cache ----------------------------------------------
for v in v1 v2; do
  on C export --json -o "$work/c-$v.tar" "$(diff_id "$work/$v.tar")" >"$work/c-$v.json"
  cmp -s "$work/$v.tar" "$work/c-$v.tar" || fail "machine C's export of $v differs"
  [ "$(diff_id "$work/c-$v.tar")" = "$(diff_id "$work/$v.tar")" ] || fail "diff_id of $v"
  echo "machine C: export $v fetched $(json_field "$work/c-$v.json" 'd["stored_bytes_fetched"]') record bytes in $(json_field "$work/c-$v.json" 'd["range_requests"]') ranges ($(stat -c %s "$work/$v.tar") tar bytes)"
done
on C export --json -o "$work/c-again.tar" "$(diff_id "$work/v1.tar")" >"$work/c-again.json"
[ "$(json_field "$work/c-again.json" 'd["chunks_fetched"]')" = 0 ] || fail "a cached layer was fetched again"
cmp -s "$work/v1.tar" "$work/c-again.tar" || fail "cached export differs"

# ---- 4. machines D and E ingest at the same time ------------------------------------------------
on D ingest --json "$work/v3.tar" >"$work/d.json" &
d_pid=$!
on E ingest --json "$work/v4.tar" >"$work/e.json" &
e_pid=$!
wait "$d_pid" || fail "machine D's ingest failed"
wait "$e_pid" || fail "machine E's ingest failed"
echo "machines D, E: attempts $(json_field "$work/d.json" 'd["publish"]["attempts"]') and $(json_field "$work/e.json" 'd["publish"]["attempts"]'), generations $(json_field "$work/d.json" 'd["publish"]["generation"]') and $(json_field "$work/e.json" 'd["publish"]["generation"]')"
on F ls --json >"$work/f-ls.json"
for v in v1 v2 v3 v4; do
  python3 - "$work/f-ls.json" "$(diff_id "$work/$v.tar")" <<'PY' || fail "layer $v is missing from the catalogue"
import json, sys
layers = {layer["diff_id"] for layer in json.load(open(sys.argv[1]))["layers"]}
sys.exit(0 if sys.argv[2] in layers else 1)
PY
done
on F export -o "$work/f-v4.tar" "$(diff_id "$work/v4.tar")" 2>/dev/null
cmp -s "$work/v4.tar" "$work/f-v4.tar" || fail "machine F's export of v4 differs"

# ---- 5. verify, gc, corruption ------------------------------------------------------------------
on F verify --json >"$work/verify.json" || fail "verify of an intact store failed"
[ "$(json_field "$work/verify.json" 'd["layers_checked"]')" = 4 ] || fail "verify checked the wrong layer count"
on F stats
if on F gc 2>"$work/gc.err"; then fail "gc on a remote store ran"; fi
grep -q "not supported on a remote store" "$work/gc.err" || fail "gc error: $(cat "$work/gc.err")"
if "$strata" ls --store "registry://127.0.0.1:$port/../x" --insecure 2>"$work/bad.err"; then
  fail "a bad registry:// store was accepted"
fi
grep -q "registry://HOST" "$work/bad.err" || fail "bad store error: $(cat "$work/bad.err")"

# A repository whose strata-store-latest tag is some other image is refused, not misread.
api="http://127.0.0.1:$port/v2/team/other"
empty_digest="sha256:$(printf '{}' | sha256sum | cut -d' ' -f1)"
upload=$(curl -fsS -X POST -D - -o /dev/null "$api/blobs/uploads/" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
case "$upload" in http*) ;; *) upload="http://127.0.0.1:$port$upload" ;; esac
curl -fsS -X PUT -H "Content-Type: application/octet-stream" --data-binary '{}' \
  "$upload&digest=$empty_digest" >/dev/null
curl -fsS -X PUT -H "Content-Type: application/vnd.oci.image.manifest.v1+json" --data-binary \
  "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"$empty_digest\",\"size\":2},\"layers\":[]}" \
  "$api/manifests/strata-store-latest" >/dev/null
if "$strata" ls --store "registry://127.0.0.1:$port/team/other" --insecure --cache "$work/machine-H" \
  2>"$work/other.err"; then
  fail "a repository that is not a strata store was read as one"
fi
grep -q "not a strata store generation" "$work/other.err" || fail "other repo: $(cat "$work/other.err")"

# Flip one byte inside the first chunk record of every pack blob on the registry's disk.
python3 - "$work/registry" <<'PY'
import os, sys
root = os.path.join(sys.argv[1], "docker/registry/v2/blobs/sha256")
flipped = 0
for dirpath, _, files in os.walk(root):
    for name in files:
        with open(os.path.join(dirpath, name), "r+b") as f:
            if f.read(8) != b"STRATAPK":
                continue
            f.seek(16 + 48 + 10)
            byte = f.read(1)
            f.seek(16 + 48 + 10)
            f.write(bytes([byte[0] ^ 0xFF]))
            flipped += 1
sys.exit(0 if flipped >= 4 else f"FAIL: found {flipped} pack blobs")
PY
if on G verify >"$work/verify-bad.out" 2>"$work/verify-bad.err"; then fail "verify missed a corrupt pack"; fi
grep -q "NOT CLEAN" "$work/verify-bad.out" || fail "verify output: $(cat "$work/verify-bad.out")"
if on G export -o "$work/g-v1.tar" "$(diff_id "$work/v1.tar")" 2>"$work/export-bad.err"; then
  fail "export used a corrupt chunk"
fi
[ ! -e "$work/g-v1.tar" ] || fail "a failed export left its output behind"
grep -q "checksum\|digest\|corrupt" "$work/export-bad.err" || fail "export error: $(cat "$work/export-bad.err")"
echo "ok: remote store shared by machines A-G through docker-registry"
