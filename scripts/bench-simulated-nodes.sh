#!/usr/bin/env bash
# Simulated-node benchmark (docs/benchmarks.md, ADR 0015): starts `rudder server` with N
# simulated nodes and no real one, waits until all are Ready, reports the server's RSS, then
# times a Deployment of R replicas from creation to fully available.
#   scripts/bench-simulated-nodes.sh NODES REPLICAS [RUDDER_BINARY]
set -euo pipefail
nodes=${1:?nodes}
replicas=${2:?replicas}
rudder=${3:-/work/rel/release/rudder}
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
RUDDER_LOG=warn "$rudder" server --data-dir "$dir/data" --bind-address 127.0.0.1 --port "$port" \
  --disable-agent --simulate-nodes "$nodes" --simulate-prefix bench \
  --cluster-cidr 10.128.0.0/9 --node-cidr-mask-size 24 \
  --service-cluster-ip-range 100.64.0.0/24 >"$dir/server.log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$dir"' EXIT
export KUBECONFIG="$dir/data/kubeconfig"
rss() { awk '/VmRSS/ {print int($2 / 1024) " MiB"}' "/proc/$pid/status"; }
start=$(date +%s.%N)
until [ -f "$KUBECONFIG" ] && [ "$(kubectl get nodes --no-headers 2>/dev/null | grep -c ' Ready ')" = "$nodes" ]; do
  sleep 1
done
echo "nodes=$nodes ready after $(echo "$(date +%s.%N) - $start" | bc) s, RSS $(rss)"
sleep 30
echo "nodes=$nodes idle 30 s (leases renewing), RSS $(rss)"
kubectl create deployment bench --image=nginx:1.27 --replicas="$replicas" >/dev/null
start=$(date +%s.%N)
until [ "$(kubectl get deployment bench -o jsonpath='{.status.availableReplicas}')" = "$replicas" ]; do
  sleep 0.5
done
echo "nodes=$nodes replicas=$replicas available after $(echo "$(date +%s.%N) - $start" | bc) s, RSS $(rss)"
