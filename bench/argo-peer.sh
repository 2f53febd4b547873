#!/usr/bin/env bash
# Runs Argo CD's own health assessment and diff (bench/argo-peer/) on the
# objects of Berth's engine benchmark, on one core, for a side-by-side ratio
# with `cargo bench -p berth-engine --bench engine`. Prints the sanity counts
# and a Markdown table: median per round, objects/s, bytes and allocations
# per object, for health, diff and both.
#
#   bench/argo-peer.sh [ROUNDS]      (default 10; needs go and, the first
#                                     time, cargo)
#
# The objects are read from $BERTH_BENCH_DUMP (default
# $TMPDIR/engine-bench/objects.jsonl), made by the Rust benchmark if missing.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
rounds="${1:-10}"
data="${BERTH_BENCH_DUMP:-${TMPDIR:-/tmp}/engine-bench/objects.jsonl}"
bin="${TMPDIR:-/tmp}/berth-argo-peer"

# Low priority: the first build compiles much of Argo CD and Kubernetes.
(cd "$root/bench/argo-peer" && nice -n 19 go build -p 1 -o "$bin" .)

if [[ ! -s $data ]]; then
  mkdir -p "$(dirname "$data")"
  # Absolute, since cargo runs the benchmark from the crate's directory.
  data="$(cd "$(dirname "$data")" && pwd)/$(basename "$data")"
  # --test runs each benchmark once; the objects are written before that.
  (cd "$root" && BERTH_BENCH_DUMP="$data" cargo bench -p berth-engine --bench engine -- --test) >&2
  [[ -s $data ]] || { echo "no objects written to $data" >&2; exit 1; }
fi

GOMAXPROCS=1 "$bin" -rounds "$rounds" "$data"
