#!/usr/bin/env bash
# Measures the local control plane: time from start to ready (the
# `kubeconfig:` line), resident memory idle, and resident memory holding
# 1,000 ConfigMaps. Prints a Markdown table; medians over RUNS starts.
#
#   bench/testenv.sh [RUNS]      (default 5; needs tools/bin/berth-testenv and kubectl)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$root/tools/bin/berth-testenv"
runs="${1:-5}"
[[ -x $bin ]] || { echo "build the control plane first: make tools" >&2; exit 1; }

median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
rss_mib() { awk '/^VmRSS/ {printf "%.0f\n", $2/1024}' "/proc/$1/status"; }

work="$(mktemp -d "${TMPDIR:-/tmp}/berth-bench.XXXXXX")"
trap 'exec 3>&- 2>/dev/null || true; rm -rf "$work"' EXIT

# start DIR: starts a control plane on DIR, holding its stdin on fd 3; sets
# $pid and $ready_ms.
start() {
  local dir=$1 t0 t1
  mkdir -p "$dir"
  rm -f "$dir.in" "$dir.out"; mkfifo "$dir.in"
  t0=$(date +%s%N)
  "$bin" run --data-dir "$dir" --exit-with-stdin <"$dir.in" >"$dir.out" 2>"$dir.err" &
  pid=$!
  exec 3>"$dir.in"
  until grep -q '^kubeconfig: ' "$dir.out" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || { cat "$dir.err" >&2; exit 1; }
    sleep 0.02
  done
  t1=$(date +%s%N)
  ready_ms=$(( (t1 - t0) / 1000000 ))
}
stop() { exec 3>&-; wait "$pid" 2>/dev/null || true; }

cold=() warm=()
for i in $(seq 1 "$runs"); do
  start "$work/c$i"; cold+=("$ready_ms"); stop   # new data dir: PKI and etcd created
  start "$work/c$i"; warm+=("$ready_ms"); stop   # same data dir again
done

# Memory: one more instance, idle, then with 1,000 ConfigMaps.
start "$work/mem"
kc="$work/mem/kubeconfig"
sleep 30
idle=$(for _ in 1 2 3 4 5; do rss_mib "$pid"; sleep 2; done | median)
python3 - "$work/cms.yaml" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    for i in range(1000):
        f.write(f"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bench-{i:04d}\n  namespace: default\n  labels: {{bench: 'true'}}\ndata:\n  index: '{i}'\n  payload: '{'x' * 200}'\n")
PY
t0=$(date +%s%N)
kubectl --kubeconfig "$kc" apply --server-side -f "$work/cms.yaml" >/dev/null
t1=$(date +%s%N)
count=$(kubectl --kubeconfig "$kc" get configmaps -n default -l bench=true -o name | wc -l)
sleep 30
loaded=$(for _ in 1 2 3 4 5; do rss_mib "$pid"; sleep 2; done | median)
stop

printf '| measure | median | runs |\n|---|---|---|\n'
printf '| start to ready, new data dir | %s ms | %s |\n' "$(printf '%s\n' "${cold[@]}" | median)" "$runs"
printf '| start to ready, existing data dir | %s ms | %s |\n' "$(printf '%s\n' "${warm[@]}" | median)" "$runs"
printf '| resident memory, idle (30 s after ready) | %s MiB | 5 samples |\n' "$idle"
printf '| resident memory with %s ConfigMaps | %s MiB | 5 samples |\n' "$count" "$loaded"
printf '| kubectl apply --server-side of 1,000 ConfigMaps | %s ms | 1 |\n' "$(( (t1 - t0) / 1000000 ))"
