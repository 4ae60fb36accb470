# Sourced by bench/pull_compare.sh: the link-speed knob of issue 17's benches, in one of two ways.
#   netns  (default where `ip netns add` works: root with iproute2) the bench re-runs itself inside
#          a network namespace of its own, so its registry and every client talk over that
#          namespace's loopback, and a speed is a `tc` token-bucket filter (tbf) on that loopback:
#          the kernel paces the packets, no process on the path copies the bytes. That matters on a
#          small machine: the Python forwarder below spent ~0.12 CPU-s per 48 MiB pull at 1 Gbit/s
#          (/proc/PID/stat ticks around a pull), a quarter of a core taken from a CPU-bound client.
#   proxy  bench/rate_limit_proxy.py between the clients and the registry (one shared token bucket
#          per direction); needs nothing but Python. STRATA_BENCH_LINK=proxy forces it.
# Both shape all connections together, with a burst of 50 ms at the rate, as a host behind a
# link of that speed sees it. "unlimited" is plain loopback either way.
#   link_env_enter "$0" "$@"   netns: run the script in a fresh namespace, then delete it and exit
#   link_start SPEED PORT      SPEED: bits/s with k/M/G or "unlimited"; sets $endpoint (host:port)
#   link_stop                  back to an unshaped link
#   link_way                   "netns" or "proxy", for the report
link_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

link_way() {
  if [ "${STRATA_BENCH_LINK_INSIDE:-}" = 1 ]; then echo netns; else echo proxy; fi
}

link_env_enter() {
  local script=$1 namespace status
  shift
  [ "${STRATA_BENCH_LINK_INSIDE:-}" = 1 ] && return 0
  [ "${STRATA_BENCH_LINK:-netns}" = netns ] || return 0
  command -v ip >/dev/null && command -v tc >/dev/null || return 0
  namespace=strata-bench-$$
  ip netns add "$namespace" 2>/dev/null || return 0
  status=0
  if ip netns exec "$namespace" ip link set lo up; then
    STRATA_BENCH_LINK_INSIDE=1 ip netns exec "$namespace" bash "$script" "$@" || status=$?
  else
    status=1
  fi
  ip netns del "$namespace"
  exit "$status"
}

link_bits() {  # 100M -> 100000000
  python3 -c "import sys; s=sys.argv[1]; m={'k':1e3,'M':1e6,'G':1e9}; print(int(float(s[:-1])*m[s[-1]]) if s[-1] in m else int(s))" "$1"
}

link_start() {
  local speed=$1 port=$2 bits burst
  link_pid=
  if [ "$speed" = unlimited ]; then
    endpoint=127.0.0.1:$port
    return
  fi
  bits=$(link_bits "$speed")
  if [ "$(link_way)" = netns ]; then
    # 50 ms at the rate, and at least two of loopback's 64 KiB segments; packets wait up to 1 s
    # in the queue rather than being dropped (a drop on loopback costs a TCP retransmit timeout).
    burst=$((bits / 8 / 20))
    [ "$burst" -lt 131072 ] && burst=131072
    tc qdisc replace dev lo root tbf rate "$bits" burst "$burst" latency 1s
    endpoint=127.0.0.1:$port
    return
  fi
  rm -f "$work/link.port"
  python3 "$link_dir/rate_limit_proxy.py" "$port" "$bits" "$work/link.port" &
  link_pid=$!
  registry_env_pids+=("$link_pid")
  for _ in $(seq 1 100); do [ -s "$work/link.port" ] && break; sleep 0.1; done
  endpoint=127.0.0.1:$(cat "$work/link.port")
}

link_stop() {
  if [ "$(link_way)" = netns ]; then
    tc qdisc del dev lo root 2>/dev/null || true
  fi
  if [ -n "${link_pid:-}" ]; then
    kill "$link_pid" 2>/dev/null || true
    wait "$link_pid" 2>/dev/null || true
    link_pid=
  fi
}
