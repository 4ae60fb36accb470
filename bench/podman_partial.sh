#!/usr/bin/env bash
# Issue 17's bytes figure (not run by `make test`): podman's partial pull of strata's zstd:chunked
# layers against skopeo's zstd:chunked layers of the same trees. Debian's podman 4.3 (c/storage
# 1.43) partial-pulls only the old variant (io.containers.* keys, 40-byte footer; shared/specs/
# layer-formats.md §0), so strata writes `zstd:chunked-v1` here, and skopeo 1.9.3 writes its own
# (old) variant. The trees are the v1 -> v2 pair of `make run` (scripts/run-demo.sh). Both images
# are pushed to a docker-registry on loopback; podman (overlay storage with enable_partial_images,
# in a directory of its own) pulls v1 directly, then v2 through bench/rate_limit_proxy.py, which
# counts the bytes sent to the client (HTTP headers included). Also printed: podman's full pull of
# each v2 and strata's own pull of v2 holding v1 (zstd:chunked v2 variant with its delta referrer
# when the store has deltas, else plain). Usage:
#   bench/podman_partial.sh [PATH_TO_STRATA]   (STRATA_BENCH_DEMO: a run-demo.sh directory to reuse;
#   STRATA_BENCH_LEVEL: strata's --level, default: the CLI's default for zstd:chunked)
set -euo pipefail
strata=$(realpath "${1:-build/tools/strata}")
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=../tests/integration/registry_env.sh
. "$root/tests/integration/registry_env.sh"
registry_env_require docker-registry skopeo podman curl python3 /usr/bin/time
registry_env_init strata-podman-partial
level=()
[ -n "${STRATA_BENCH_LEVEL:-}" ] && level=(--level "$STRATA_BENCH_LEVEL")

demo=${STRATA_BENCH_DEMO:-}
if [ -z "$demo" ]; then
  echo "== v1/v2 from scripts/run-demo.sh" >&2
  demo=$work/demo
  "$root/scripts/run-demo.sh" "$strata" "$demo" >"$work/demo.log" 2>&1
fi
start_registry bench
rp=$port
for version in v1 v2; do
  "$strata" build "$demo/$version" --layout "$work/gz" --tag "$version" --format gzip >/dev/null
  "$strata" convert "$work/gz:$version" --to zstd:chunked-v1 "${level[@]}" --layout "$work/zc" \
    --tag "$version" >/dev/null
  "$strata" push "$work/zc:$version" "127.0.0.1:$rp/strata/image:$version" --insecure >/dev/null
  skopeo --insecure-policy copy --quiet --dest-tls-verify=false --dest-compress-format zstd:chunked \
    "oci:$work/gz:$version" "docker://127.0.0.1:$rp/skopeo/image:$version"
done
python3 "$root/bench/rate_limit_proxy.py" "$rp" 100000000000 "$work/link.port" "$work/count" &
registry_env_pids+=($!)
for _ in $(seq 1 100); do [ -s "$work/link.port" ] && break; sleep 0.1; done
lp=$(cat "$work/link.port")
counted() { sleep 0.3; cat "$work/count" 2>/dev/null || echo 0; }

cat >"$work/storage.conf" <<CONF
[storage]
driver = "overlay"
runroot = "$work/podman-run"
graphroot = "$work/podman-root"
[storage.options]
pull_options = {enable_partial_images = "true", use_hard_links = "false", ostree_repos = ""}
CONF
export CONTAINERS_STORAGE_CONF=$work/storage.conf
podman_pull() {  # IMAGE: pulls through the counting proxy; prints "bytes seconds"
  local before after
  before=$(counted)
  /usr/bin/time -f "%e" -o "$work/podman.time" \
    podman pull --tls-verify=false -q "127.0.0.1:$lp/$1" >/dev/null 2>"$work/podman.err" ||
    { cat "$work/podman.err" >&2; exit 1; }
  after=$(counted)
  echo "$((after - before)) $(cat "$work/podman.time")"
}
declare -A partial full
for who in strata skopeo; do
  rm -rf "$work/podman-root" "$work/podman-run"
  podman pull --tls-verify=false -q "127.0.0.1:$rp/$who/image:v1" >/dev/null
  partial[$who]=$(podman_pull "$who/image:v2")
  podman rmi -a -f >/dev/null 2>&1 || true
  rm -rf "$work/podman-root" "$work/podman-run"
  full[$who]=$(podman_pull "$who/image:v2")
done
rm -rf "$work/store"
"$strata" pull "127.0.0.1:$rp/strata/image:v1" --store "$work/store" --insecure >/dev/null
before=$(counted)
"$strata" pull "127.0.0.1:$lp/strata/image:v2" --store "$work/store" --insecure >/dev/null
strata_bytes=$(( $(counted) - before ))

python3 - "${partial[strata]}" "${partial[skopeo]}" "${full[strata]}" "${full[skopeo]}" \
  "$strata_bytes" "$(podman --version)" "${STRATA_BENCH_LEVEL:-default}" <<'PY'
import sys
ps, pk, fs, fk = (tuple(map(float, a.split())) for a in sys.argv[1:5])
strata_pull, podman_version, level = int(sys.argv[5]), sys.argv[6], sys.argv[7]
mb = lambda b: f"{b / 1e6:.3f} MB"
print(f"{podman_version}, overlay, enable_partial_images; strata --level {level}; one run")
print("| pull of v2 (v1 held where partial) | strata's layer | skopeo's layer | strata / skopeo bytes |")
print("|---|---|---|---|")
print(f"| podman partial pull, bytes on the wire | {mb(ps[0])} ({ps[1]:.2f} s) | {mb(pk[0])} ({pk[1]:.2f} s) | {ps[0] / pk[0]:.3f} |")
print(f"| podman full pull (empty storage) | {mb(fs[0])} ({fs[1]:.2f} s) | {mb(fk[0])} ({fk[1]:.2f} s) | {fs[0] / fk[0]:.3f} |")
print(f"strata pull of its zstd:chunked-v1 v2 holding v1: {mb(strata_pull)}")
PY
