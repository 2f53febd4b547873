#!/usr/bin/env bash
# Runs every test: builds the tools and the Rust workspace, starts one local
# control plane for the whole run, runs `cargo test --workspace` against it,
# and prints how long each phase took.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
phases=()
phase_start=$SECONDS
phase() { # phase NAME: ends the running phase, named NAME
  phases+=("$(printf '%-28s %5ds' "$1" $((SECONDS - phase_start)))")
  phase_start=$SECONDS
}
report() {
  echo "---- phase timings ----" >&2
  printf '%s\n' "${phases[@]}" >&2
}
trap report EXIT

scripts/install-deps.sh
phase "system packages"

echo "==> building tools (control plane, helm, kustomize)" >&2
testenv/build.sh
phase "tool builds"

echo "==> building the Rust workspace and its tests" >&2
cargo test --workspace --no-run --locked
phase "rust build"

echo "==> lint: rustfmt, clippy" >&2
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
phase "lint"

echo "==> starting the shared control plane" >&2
run_dir="$(mktemp -d "${TMPDIR:-/tmp}/berth-test.XXXXXX")"
fifo="$run_dir/stdin"
mkfifo "$fifo"
# The control plane stops when this script's end of the fifo closes, which
# also happens if the script is killed.
tools/bin/berth-testenv run --data-dir "$run_dir/cluster" --exit-with-stdin \
  <"$fifo" >"$run_dir/stdout" 2>"$run_dir/stderr" &
plane_pid=$!
exec 3>"$fifo"
cleanup() {
  exec 3>&- || true
  # The plane stops when the fifo's last writer closes it; a process that
  # inherited the descriptor and outlived its test would keep it open, so
  # the plane is stopped by signal if it has not gone within 30 s.
  ( sleep 30; kill "$plane_pid" 2>/dev/null ) &
  watchdog=$!
  wait "$plane_pid" 2>/dev/null || true
  kill "$watchdog" 2>/dev/null || true
  rm -rf "$run_dir"
  report
}
trap cleanup EXIT
for _ in $(seq 1 1800); do
  if grep -q '^kubeconfig: ' "$run_dir/stdout" 2>/dev/null; then break; fi
  if ! kill -0 "$plane_pid" 2>/dev/null; then
    echo "the control plane exited before it was ready:" >&2
    cat "$run_dir/stderr" >&2
    tail -50 "$run_dir/cluster/logs/control-plane.log" >&2 || true
    exit 1
  fi
  sleep 0.1
done
grep -q '^kubeconfig: ' "$run_dir/stdout" || { echo "the control plane was not ready after 180s" >&2; exit 1; }
export BERTH_TEST_KUBECONFIG="$run_dir/cluster/kubeconfig"
export BERTH_TEST_DATA_DIR="$run_dir/cluster"
export BERTH_TOOLS_DIR="$root/tools/bin"
phase "control plane start"

echo "==> running the tests" >&2
cargo test --workspace --locked -- "$@"
phase "tests"
