#!/usr/bin/env bash
# HTTP through the data path (docs/benchmarks.md, issue 7): `wrk` against the same backend pods
# (busybox httpd) three ways, side by side — through a Service's ClusterIP (rudder's nftables
# proxy, kernel DNAT), through rudder's Ingress controller, and through Debian's nginx as a
# reverse proxy to the pod addresses. Run as root; everything it creates (data dir, bridge,
# nft tables, nginx) is removed on exit.
#   scripts/bench-http-proxy.sh [SECONDS] [CONNECTIONS] [RUDDER_BINARY]
set -euo pipefail
secs=${1:-15}
conns=${2:-32}
rudder=${3:-/work/rel/release/rudder}
repo=$(cd "$(dirname "$0")/.." && pwd)
"$repo/scripts/ensure-packages" wrk busybox-static
if ! dpkg -s nginx >/dev/null 2>&1; then
  # Debian starts an installed nginx on port 80; this benchmark runs its own instead.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    "$repo/scripts/ensure-packages" nginx
    rm -f /usr/sbin/policy-rc.d
  else
    "$repo/scripts/ensure-packages" nginx
  fi
fi
table=rudderhttp
bridge=rhttp0
dir=$(mktemp -d)
free() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free)
http_port=$(free)
nginx_port=$(free)
(cd "$repo" && cargo run -q -p rudder-runtime --features testing --example busybox-image -- "$dir/busybox.tar")
RUDDER_LOG=warn "$rudder" server --data-dir "$dir/data" --bind-address 127.0.0.1 --port "$port" \
  --service-cluster-ip-range 10.201.0.0/24 --cluster-cidr 172.28.0.0/16 \
  --proxy-table "$table" --pod-bridge "$bridge" --disable-network-policy --disable-dns \
  --ingress-http-port "$http_port" --ingress-https-port "$(free)" >"$dir/server.log" 2>&1 &
pid=$!
nginx_pid=
cleanup() {
  [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null || true
  # Containers outlive the agent by design: remove the pods while the agent still runs.
  kubectl delete deployment web --ignore-not-found --wait=false >/dev/null 2>&1 || true
  kubectl wait --for=delete pod -l app=web --timeout=60s >/dev/null 2>&1 || true
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  nft delete table ip "$table" 2>/dev/null || true
  ip link delete "$bridge" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
export KUBECONFIG="$dir/data/kubeconfig"
until [ -f "$KUBECONFIG" ] && kubectl get --raw /readyz >/dev/null 2>&1; do sleep 0.5; done
"$rudder" image import --data-dir "$dir/data" "$dir/busybox.tar" >/dev/null
until [ "$(kubectl get nodes --no-headers 2>/dev/null | grep -c ' Ready ')" = 1 ]; do sleep 0.5; done

kubectl apply -f - >/dev/null <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: httpd
        image: busybox:1.36
        imagePullPolicy: IfNotPresent
        command: [sh, -c, "mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 8080 -h /www"]
        ports: [{containerPort: 8080}]
        readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  rules:
  - host: web.bench
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
EOF
kubectl rollout status deployment web --timeout=120s >/dev/null
cluster_ip=$(kubectl get svc web -o jsonpath='{.spec.clusterIP}')
pods=$(kubectl get pods -l app=web -o jsonpath='{range .items[*]}{.status.podIP}{" "}{end}')
until curl -fsS -o /dev/null "http://$cluster_ip/"; do sleep 0.5; done
until curl -fsS -o /dev/null -H 'Host: web.bench' "http://127.0.0.1:$http_port/"; do sleep 0.5; done

upstreams=$(for ip in $pods; do echo "server $ip:8080;"; done)
cat >"$dir/nginx.conf" <<EOF
worker_processes 2;
pid $dir/nginx.pid;
error_log $dir/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  upstream web { $upstreams keepalive 64; }
  server {
    listen 127.0.0.1:$nginx_port;
    location / { proxy_pass http://web; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
EOF
nginx -c "$dir/nginx.conf" -g 'daemon off;' &
nginx_pid=$!
until curl -fsS -o /dev/null "http://127.0.0.1:$nginx_port/"; do sleep 0.2; done

run() {
  local what=$1
  shift
  local out
  out=$(wrk -t2 -c"$conns" -d"${secs}s" --latency "$@")
  local rps p99
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  echo "$what: $rps requests/s, p99 $p99 ($conns connections, ${secs}s)"
}
echo "backends: 2 busybox httpd pods ($pods); uptime load: $(cut -d' ' -f1-3 /proc/loadavg)"
run "direct to one pod (baseline)" "http://${pods%% *}:8080/"
run "ClusterIP (nftables DNAT)" "http://$cluster_ip/"
run "rudder Ingress" -H 'Host: web.bench' "http://127.0.0.1:$http_port/"
run "nginx reverse proxy" "http://127.0.0.1:$nginx_port/"
