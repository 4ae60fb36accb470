# Sourced by the integration scripts that need a registry on loopback (registry_push_pull.sh,
# registry_partial_pull.sh, remote_store.sh, oci_tools.sh, fastpull_tools.sh,
# bench/registry_pull_compare.sh):
# one definition of the sandbox (a temp dir holding HOME, XDG dirs, TMPDIR and an empty
# registries.conf, so skopeo sees only what a script names), of starting docker-registry 2.8
# (filesystem backend in the sandbox, free port, waits for /v2/) and the fault proxy
# (registry_fault_proxy.py), and of stopping everything a script started when it exits.
#   registry_env_require TOOL...      exit 77 (skip) naming a missing tool
#   registry_env_init PREFIX          sets $work, exports the sandbox, installs the EXIT trap
#   start_registry NAME [AUTH_YAML]   sets $port
#   start_fault_proxy UPSTREAM NAME [bearer]   sets $proxy (host:port); log in $work/NAME.log
#   json_field FILE EXPR, now, elapsed T0 T1, free_port
registry_env_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
registry_env_pids=()

registry_env_require() {
  local tool
  for tool in "$@"; do
    if ! command -v "$tool" >/dev/null; then
      echo "SKIP: $tool is not installed (scripts/install-deps.sh installs it)"
      exit 77
    fi
  done
}

registry_env_cleanup() {
  local pid
  for pid in "${registry_env_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  registry_env_pids=()
  if [ -n "${work:-}" ]; then rm -rf "$work"; fi
}

registry_env_init() {
  work=$(mktemp -d "/tmp/$1.XXXXXX")
  trap registry_env_cleanup EXIT
  export XDG_DATA_HOME="$work/xdg" XDG_CACHE_HOME="$work/cache" TMPDIR="$work/tmp"
  export CONTAINERS_REGISTRIES_CONF="$work/registries.conf"
  export HOME="$work/home" XDG_RUNTIME_DIR="$work/run"
  unset REGISTRY_AUTH_FILE http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
  mkdir -p "$XDG_DATA_HOME" "$XDG_CACHE_HOME" "$TMPDIR" "$HOME" "$XDG_RUNTIME_DIR"
  : >"$CONTAINERS_REGISTRIES_CONF"  # no search registries, no mirrors
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
json_field() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }
now() { python3 -c 'import time; print(time.monotonic())'; }
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" "$1" "$2"; }

# start_registry NAME [AUTH_YAML]: a fresh registry root per name (a cached "this blob is in repo
# X" can then never satisfy a push); sets $port.
start_registry() {
  local name=$1 auth=${2:-}
  port=$(free_port)
  cat >"$work/$name.yml" <<YML
version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: $work/$name}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$port}
$auth
YML
  docker-registry serve "$work/$name.yml" >"$work/$name.log" 2>&1 &
  registry_env_pids+=($!)
  for _ in $(seq 1 100); do
    curl -s -o /dev/null "http://127.0.0.1:$port/v2/" && return 0
    sleep 0.1
  done
  cat "$work/$name.log"
  exit 1
}

# start_fault_proxy UPSTREAM_PORT NAME [bearer]: sets $proxy to its host:port.
start_fault_proxy() {
  local upstream=$1 name=$2 mode=${3:-}
  python3 "$registry_env_dir/registry_fault_proxy.py" "$upstream" "$work/$name.port" "$work/$name.log" $mode &
  registry_env_pids+=($!)
  for _ in $(seq 1 100); do [ -s "$work/$name.port" ] && break; sleep 0.1; done
  [ -s "$work/$name.port" ] || { echo "FAIL: fault proxy $name did not start"; exit 1; }
  proxy="127.0.0.1:$(cat "$work/$name.port")"
}
