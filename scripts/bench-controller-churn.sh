#!/usr/bin/env bash
# Controller CPU under pod churn (docs/benchmarks.md "Controller CPU while pods churn", issue 6):
# a `rudder server` (API server, store, scheduler, controllers) with NODES simulated nodes in a
# separate `rudder agent --simulate` process, so the server's CPU is the control plane's alone;
# then one Deployment scaled from 0 to PODS and back to 0, CYCLES times. Each phase ends when
# the Deployment reports PODS available (up) or the store holds no pod any more (down: every
# pod deleted by the agents after its graceful termination). Per phase it prints the wall time,
# the server's CPU seconds (utime + stime from /proc/PID/stat) and the busiest controllers'
# reconciles and reconcile time (workqueue_adds_total, workqueue_work_duration_seconds).
#   scripts/bench-controller-churn.sh NODES PODS CYCLES [RUDDER_BINARY]
# RUDDER_BINARY is a release build (default /work/rel/release/rudder):
#   CARGO_TARGET_DIR=/work/rel cargo build --release -p rudder
set -euo pipefail
nodes=${1:?nodes}
pods=${2:?pods}
cycles=${3:?cycles}
rudder=${4:-/work/rel/release/rudder}
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

# A /24 per node from a /9: room for 32,768 nodes (a /12 holds only 4,096).
RUDDER_LOG=warn "$rudder" server --data-dir "$dir/data" --bind-address 127.0.0.1 --port "$port" \
  --disable-agent --cluster-cidr 10.128.0.0/9 --node-cidr-mask-size 24 \
  --service-cluster-ip-range 100.64.0.0/24 >"$dir/server.log" 2>&1 &
server=$!
pids+=("$server")
export KUBECONFIG="$dir/data/kubeconfig"
until [ -f "$KUBECONFIG" ] && kubectl get --raw /readyz >/dev/null 2>&1; do sleep 0.5; done
RUDDER_LOG=warn "$rudder" agent --simulate "$nodes" --simulate-prefix churn \
  --kubeconfig "$KUBECONFIG" >"$dir/agent.log" 2>&1 &
agent=$!
pids+=("$agent")
until [ "$(kubectl get nodes --no-headers 2>/dev/null | grep -c ' Ready ')" = "$nodes" ]; do
  sleep 2
done
echo "nodes=$nodes Ready; load average $(cut -d' ' -f1-3 /proc/loadavg)"
sleep 20

tck=$(getconf CLK_TCK)
cpu() { awk -v t="$tck" '{printf "%.2f", ($14 + $15) / t}' "/proc/$1/stat"; }
metrics() { kubectl get --raw /metrics; }
stored_pods() {
  metrics | awk '/^apiserver_storage_objects\{resource="pods"\}/ {print $2; found=1} END {if (!found) print 0}'
}
# Per-controller deltas between two /metrics dumps: reconciles and seconds spent reconciling.
controllers() {
  awk '
    FNR == 1 { file++ }
    /^workqueue_adds_total\{/ || /^workqueue_work_duration_seconds_sum\{/ || /^workqueue_work_duration_seconds_count\{/ {
      match($0, /name="[^"]*"/); name = substr($0, RSTART + 6, RLENGTH - 7)
      split($1, m, "{"); v[file, m[1], name] = $2; names[name] = 1
    }
    END {
      for (n in names) {
        runs = v[2, "workqueue_work_duration_seconds_count", n] - v[1, "workqueue_work_duration_seconds_count", n]
        secs = v[2, "workqueue_work_duration_seconds_sum", n] - v[1, "workqueue_work_duration_seconds_sum", n]
        adds = v[2, "workqueue_adds_total", n] - v[1, "workqueue_adds_total", n]
        if (runs > 0) printf "    %-40s %8d requests %8d reconciles %8.1f s reconciling\n", n, adds, runs, secs
      }
    }' "$1" "$2" | sort -k6 -n -r | head -8
}

kubectl create deployment churn --image=nginx:1.27 --replicas=0 >/dev/null
phase() { # NAME REPLICAS DONE_TEST
  local name=$1 replicas=$2 done_test=$3
  metrics >"$dir/before"
  local c0 t0
  c0=$(cpu "$server")
  t0=$(date +%s.%N)
  kubectl scale deployment churn --replicas="$replicas" >/dev/null
  until $done_test; do sleep 2; done
  local wall cpus
  wall=$(echo "$(date +%s.%N) - $t0" | bc)
  cpus=$(echo "$(cpu "$server") - $c0" | bc)
  metrics >"$dir/after"
  printf '%s to %s pods: %.1f s, server CPU %.1f s (%.0f %% of one core), RSS %s MiB, load %s\n' \
    "$name" "$replicas" "$wall" "$cpus" "$(echo "100 * $cpus / $wall" | bc -l)" \
    "$(awk '/VmRSS/ {print int($2 / 1024)}' "/proc/$server/status")" "$(cut -d' ' -f1 /proc/loadavg)"
  controllers "$dir/before" "$dir/after"
}
all_available() { [ "$(kubectl get deployment churn -o jsonpath='{.status.availableReplicas}')" = "$pods" ]; }
none_stored() { [ "$(stored_pods)" = 0 ]; }
for i in $(seq 1 "$cycles"); do
  echo "cycle $i"
  phase up "$pods" all_available
  phase down 0 none_stored
done
echo "agent process: CPU $(cpu "$agent") s in all, peak RSS $(awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$agent/status") MiB"
echo "server process: CPU $(cpu "$server") s in all, peak RSS $(awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$server/status") MiB"
