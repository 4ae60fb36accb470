#!/usr/bin/env bash
# Integration check of `strata build` against real OCI tools from Debian 12 (shared/specs/
# layer-formats.md §4): a private docker-registry on 127.0.0.1 (free port, filesystem backend in
# a temp dir), `skopeo copy` of strata's gzip and zstd images into it and `skopeo inspect` of the
# digests, `umoci unpack` of the gzip image (umoci checks diff_ids) compared with the source tree,
# and `oci-image-tool validate` of the gzip image. Installs nothing: the packages come from
# scripts/install-deps.sh; a missing tool makes the test skip (exit 77) with its name.
# skopeo 1.9.3 has no option for its blob-info cache (as root: /var/lib/containers/cache), so
# every run uses a fresh registry root: a cached "this blob is in repo X" can then never satisfy
# a push, the registry must receive every blob. Non-root runs get XDG_DATA_HOME in the temp dir;
# CONTAINERS_REGISTRIES_CONF points at an empty file so the system's registries.conf plays no part.
set -euo pipefail

strata=${1:?usage: oci_tools.sh PATH_TO_STRATA}
# shellcheck source=registry_env.sh
. "$(cd "$(dirname "$0")" && pwd)/registry_env.sh"
registry_env_require skopeo umoci docker-registry curl python3
registry_env_init strata-oci-tools

# The source tree: modes, an empty directory, a symlink, a hard link, a name over 100 bytes.
src="$work/src"
long_dir=$(printf 'd%.0s' $(seq 1 90))
long_file=$(printf 'f%.0s' $(seq 1 70))
mkdir -p "$src/bin" "$src/etc/empty" "$src/usr/share/$long_dir"
printf '#!/bin/sh\necho hi\n' >"$src/bin/tool.sh"
chmod 0755 "$src/bin/tool.sh"
printf 'hello\n' >"$src/etc/hello.txt"
chmod 0600 "$src/etc/hello.txt"
chmod 0750 "$src/etc"
ln -s ../etc/hello.txt "$src/bin/hello-link"
head -c 300000 /dev/urandom >"$src/usr/share/random.bin"
ln "$src/usr/share/random.bin" "$src/usr/share/random-hardlink.bin"
printf 'long\n' >"$src/usr/share/$long_dir/$long_file"
: >"$src/usr/share/empty"

layout="$work/layout"
"$strata" build "$src" --layout "$layout" --tag gz --format gzip --json >"$work/gz.json"
"$strata" build "$src" --layout "$layout" --tag zs --format zstd --level 5 --json >"$work/zs.json"

start_registry registry

for tag in gz zs; do
  manifest=$(json_field "$work/$tag.json" 'd["manifest_digest"]')
  layer=$(json_field "$work/$tag.json" 'd["layers"][0]["digest"]')
  skopeo --insecure-policy copy --quiet --dest-tls-verify=false \
    "oci:$layout:$tag" "docker://127.0.0.1:$port/strata/test:$tag"
  skopeo inspect --tls-verify=false "docker://127.0.0.1:$port/strata/test:$tag" >"$work/inspect-$tag.json"
  got_manifest=$(json_field "$work/inspect-$tag.json" 'd["Digest"]')
  got_layer=$(json_field "$work/inspect-$tag.json" 'd["Layers"][0]')
  [ "$got_manifest" = "$manifest" ] || { echo "FAIL $tag: registry manifest $got_manifest, strata $manifest"; exit 1; }
  [ "$got_layer" = "$layer" ] || { echo "FAIL $tag: registry layer $got_layer, strata $layer"; exit 1; }
  raw=$(skopeo inspect --raw --tls-verify=false "docker://127.0.0.1:$port/strata/test:$tag" | sha256sum | cut -d' ' -f1)
  [ "sha256:$raw" = "$manifest" ] || { echo "FAIL $tag: raw manifest hashes to sha256:$raw"; exit 1; }
  echo "ok: skopeo copy + inspect $tag ($manifest)"
done

# umoci checks every layer's diff_id while unpacking; then the tree must equal the source.
rootless=()
[ "$(id -u)" -ne 0 ] && rootless=(--rootless)
umoci unpack "${rootless[@]}" --image "$layout:gz" "$work/bundle" >/dev/null
diff -r --no-dereference "$src" "$work/bundle/rootfs"
list_tree() { (cd "$1" && find . -printf '%p %y %m %n %l\n' | LC_ALL=C sort); }
diff <(list_tree "$src") <(list_tree "$work/bundle/rootfs")
echo "ok: umoci unpack gives the source tree (contents, types, modes, links)"

if command -v oci-image-tool >/dev/null; then
  oci-image-tool validate --type image --ref name=gz "$layout"
  echo "ok: oci-image-tool validate"
else
  echo "SKIP (oci-image-tool only): not installed"
fi
echo "PASS"
