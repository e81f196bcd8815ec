#!/usr/bin/env bash
# Service-rule propagation benchmark (docs/benchmarks.md, issue 7): starts `rudder server` (its
# node agent runs the nftables service proxy), creates N Services, waits until every one is in
# the proxy's table, then times single changes — a port added to an existing Service and a new
# Service — from the API write to the element being present in the kernel's ruleset
# (`nft get element`). Run as root; uses its own table, bridge and data dir, removed on exit.
#   scripts/bench-service-rules.sh [N] [CHANGES] [RUDDER_BINARY]
set -euo pipefail
n=${1:-10000}
changes=${2:-10}
rudder=${3:-/work/rel/release/rudder}
table=rudderbench
bridge=rbench0
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
RUDDER_LOG=warn "$rudder" server --data-dir "$dir/data" --bind-address 127.0.0.1 --port "$port" \
  --service-cluster-ip-range 10.200.0.0/16 --cluster-cidr 172.29.0.0/16 \
  --proxy-table "$table" --pod-bridge "$bridge" --disable-network-policy \
  --disable-ingress --disable-dns >"$dir/server.log" 2>&1 &
pid=$!
cleanup() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  nft delete table ip "$table" 2>/dev/null || true
  ip link delete "$bridge" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
export KUBECONFIG="$dir/data/kubeconfig"
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }
until [ -f "$KUBECONFIG" ] && kubectl get --raw /readyz >/dev/null 2>&1; do sleep 0.5; done
until nft list table ip "$table" >/dev/null 2>&1; do sleep 0.5; done

# N selector Services without endpoints: each is one element of the no-endpoint map.
python3 - "$n" >"$dir/services.json" <<'EOF'
import json, sys
n = int(sys.argv[1])
items = [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"s-{i}"},
          "spec": {"selector": {"app": f"none-{i}"}, "ports": [{"name": "http", "port": 80}]}}
         for i in range(n)]
print(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
EOF
start=$(now)
kubectl create -f "$dir/services.json" >/dev/null
echo "services=$n created through the API in $(since "$start") s"
element() { nft get element ip "$table" no-endpoint-services "{ $1 . tcp . $2 }" >/dev/null 2>&1; }
last_ip=$(kubectl get svc "s-$((n - 1))" -o jsonpath='{.spec.clusterIP}')
until element "$last_ip" 80; do sleep 0.2; done
count=$(nft -j list map ip "$table" no-endpoint-services |
  python3 -c 'import json,sys; m=[o["map"] for o in json.load(sys.stdin)["nftables"] if "map" in o][0]; print(len(m.get("elem", [])))')
echo "services=$n all in the table $(since "$start") s after the first create ($count no-endpoint elements)"

# Single changes with the table full: each timed from just before the API call to the element
# being in the kernel's ruleset.
for i in $(seq 1 "$changes"); do
  svc="s-$(( (i * 997) % n ))"
  ip=$(kubectl get svc "$svc" -o jsonpath='{.spec.clusterIP}')
  start=$(now)
  kubectl patch svc "$svc" --type=json \
    -p '[{"op":"add","path":"/spec/ports/-","value":{"name":"extra","port":8081}}]' >/dev/null
  until element "$ip" 8081; do sleep 0.01; done
  echo "change $i: port added to $svc, in the rules after $(since "$start") s"
done
for i in $(seq 1 "$changes"); do
  start=$(now)
  ip=$(kubectl create service clusterip "new-$i" --tcp=9090:9090 -o jsonpath='{.spec.clusterIP}')
  until element "$ip" 9090; do sleep 0.01; done
  echo "new service $i: in the rules after $(since "$start") s"
done
echo "server RSS $(awk '/VmRSS/ {print int($2 / 1024) " MiB"}' "/proc/$pid/status")"
