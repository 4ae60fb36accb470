# Sourced by integration tests that need docker-registry on 127.0.0.1 (Debian 12's 2.8.2,
# filesystem backend in a scratch directory). Provides:
#   registry_env_init NAME   - scratch $work (removed on exit, with every registry started), a
#                              private HOME/XDG/TMPDIR and no proxies
#   start_registry NAME [AUTH_YAML] - starts a registry rooted in $work/NAME, sets $port
#   free_port                - a free TCP port on 127.0.0.1
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

registry_env_cleanup() {
  for pid in "${registry_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}

registry_env_init() {
  work=$(mktemp -d "/tmp/strata-$1.XXXXXX")
  registry_pids=()
  trap registry_env_cleanup EXIT
  export XDG_DATA_HOME="$work/xdg" XDG_CACHE_HOME="$work/cache" TMPDIR="$work/tmp"
  export HOME="$work/home" XDG_RUNTIME_DIR="$work/run"
  unset REGISTRY_AUTH_FILE http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
  mkdir -p "$XDG_DATA_HOME" "$XDG_CACHE_HOME" "$TMPDIR" "$HOME" "$XDG_RUNTIME_DIR"
}

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
  registry_pids+=($!)
  for _ in $(seq 1 100); do
    curl -s -o /dev/null "http://127.0.0.1:$port/v2/" && return 0
    sleep 0.1
  done
  cat "$work/$name.log"
  exit 1
}
