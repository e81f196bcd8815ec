#!/usr/bin/env bash
# The scale benchmark (docs/benchmarks.md "Scale", issue 10): a `rudder server` (embedded store,
# or etcd with STORE=etcd), NODES simulated nodes in a separate `rudder agent --simulate` process
# (so the server's figures are the control plane's alone), then DEPLOYMENTS Deployments of
# REPLICAS pods, measured by `rudder-api-bench --only scale` against upstream's SLOs.
#   scripts/bench-scale.sh NODES DEPLOYMENTS REPLICAS [BIN_DIR]
# BIN_DIR holds release builds of `rudder` and `rudder-api-bench` (default /work/rel/release):
#   CARGO_TARGET_DIR=/work/rel cargo build --release -p rudder -p rudder-api-bench
# Optional: RATE=R asks for at most R pods per second (default: all at once); DEADLINE=S stops
# waiting after S seconds and prints the tables for what was measured, labelled as partial.
# Keep DEADLINE inside any outer `timeout`; a TERM or Ctrl-C also prints partial tables.
set -euo pipefail
nodes=${1:?nodes}
deployments=${2:?deployments}
replicas=${3:?replicas per deployment}
bin=${4:-/work/rel/release}
store=${STORE:-embedded}
dir=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
pids=()
bench=
cleanup() {
  # `timeout` signals the script and then its whole process group: a second TERM arriving
  # during the waits below would otherwise end the script before the temp dir is removed.
  trap '' TERM INT
  # The bench first, while the server still answers, so its partial report has the server's
  # figures up to the end.
  if [ -n "$bench" ]; then
    kill -TERM "$bench" 2>/dev/null || true
    wait "$bench" 2>/dev/null || true
  fi
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT
# A TERM or Ctrl-C (e.g. from `timeout`) must also stop the server and agent.
trap 'exit 143' TERM
trap 'exit 130' INT

store_args=()
if [ "$store" = etcd ]; then
  client=$(free_port) peer=$(free_port)
  etcd --name bench --data-dir "$dir/etcd" --listen-client-urls "http://127.0.0.1:$client" \
    --advertise-client-urls "http://127.0.0.1:$client" --listen-peer-urls "http://127.0.0.1:$peer" \
    --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "bench=http://127.0.0.1:$peer" --quota-backend-bytes 8589934592 \
    >"$dir/etcd.log" 2>&1 &
  pids+=($!)
  store_args=(--store etcd --etcd-endpoints "http://127.0.0.1:$client")
fi

# Pods never end here; the pod GC and the event TTL stay at their defaults.
RUDDER_LOG=warn "$bin/rudder" server --data-dir "$dir/data" --bind-address 127.0.0.1 \
  --port "$port" --disable-agent --cluster-cidr 10.128.0.0/9 --node-cidr-mask-size 24 \
  --service-cluster-ip-range 100.64.0.0/24 "${store_args[@]}" >"$dir/server.log" 2>&1 &
server=$!
pids+=("$server")
export KUBECONFIG="$dir/data/kubeconfig"
until [ -f "$KUBECONFIG" ] && kubectl get --raw /readyz >/dev/null 2>&1; do sleep 0.5; done

RUDDER_LOG=warn "$bin/rudder" agent --simulate "$nodes" --simulate-prefix scale \
  --simulate-pods 110 --kubeconfig "$KUBECONFIG" >"$dir/agent.log" 2>&1 &
agent=$!
pids+=("$agent")
start=$(date +%s.%N)
until [ "$(kubectl get nodes --no-headers 2>/dev/null | grep -c ' Ready ')" = "$nodes" ]; do
  sleep 2
done
echo "store=$store nodes=$nodes Ready after $(echo "$(date +%s.%N) - $start" | bc) s"
echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"

bench_args=()
if [ -n "${RATE:-}" ]; then bench_args+=(--pods-per-second "$RATE"); fi
if [ -n "${DEADLINE:-}" ]; then bench_args+=(--deadline "$DEADLINE"); fi
"$bin/rudder-api-bench" --kubeconfig "$KUBECONFIG" --namespace scale --only scale \
  --deployments "$deployments" --replicas "$replicas" --server-pid "$server" \
  "${bench_args[@]}" &
bench=$!
wait "$bench"
bench=
echo "agent process peak RSS: $(awk '/VmHWM/ {print int($2 / 1024) " MiB"}' "/proc/$agent/status" 2>/dev/null || echo -)"
if [ "$store" = etcd ]; then
  echo "etcd peak RSS: $(awk '/VmHWM/ {print int($2 / 1024) " MiB"}' "/proc/${pids[0]}/status")"
fi
