#!/usr/bin/env bash
# Builds the local control plane (berth-testenv), the pinned helm and
# kustomize, and the tests' OpenID Connect provider (mockidp) into tools/bin.
# Needs only Go and the Go module proxy. The first
# build compiles Kubernetes (several minutes on 2 cores); later builds reuse
# Go's build cache and take seconds, and tools already at their pinned
# version are not rebuilt.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$root/tools/bin"
mkdir -p "$bin"
# shellcheck source=versions.env
source "$root/testenv/versions.env"

say() { printf '==> %s\n' "$*" >&2; }

# progress NAME TOTAL: reads `go build -v` output (one line per package
# compiled) and shows a counter; other lines (errors) pass through.
progress() {
  local name=$1 total=$2 n=0 downloads=0 line
  while IFS= read -r line; do
    if [[ $line == "go: downloading "* ]]; then
      downloads=$((downloads + 1))
      (( downloads % 100 == 0 )) && printf '    %s: %d modules downloaded\n' "$name" "$downloads" >&2
    elif [[ $line =~ ^[A-Za-z0-9_.~/-]+$ ]]; then
      n=$((n + 1))
      if [[ -t 2 ]]; then
        printf '\r    %s: %d/%s packages compiled' "$name" "$n" "$total" >&2
      elif (( n % 250 == 0 )); then
        printf '    %s: %d/%s packages compiled\n' "$name" "$n" "$total" >&2
      fi
    else
      printf '%s\n' "$line" >&2
    fi
  done
  [[ -t 2 ]] && printf '\n' >&2
  if (( n > 0 )); then printf '    %s: %d packages compiled\n' "$name" "$n" >&2; fi
  return 0
}

# stamp NAME: the inputs that decide whether a tool must be rebuilt.
stamp() {
  case $1 in
    berth-testenv) cat "$root/testenv/go.mod" "$root/testenv/go.sum" "$root"/testenv/cmd/berth-testenv/*.go | sha256sum | cut -d' ' -f1 ;;
    mockidp) cat "$root"/testenv/mockidp/go.mod "$root"/testenv/mockidp/go.sum "$root"/testenv/mockidp/*.go | sha256sum | cut -d' ' -f1 ;;
    helm) echo "$HELM_VERSION $(go env GOVERSION)" ;;
    kustomize) echo "$KUSTOMIZE_VERSION $(go env GOVERSION)" ;;
  esac
}

up_to_date() { [[ -x "$bin/$1" && -f "$bin/.$1.stamp" && "$(cat "$bin/.$1.stamp")" == "$(stamp "$1")" ]]; }

build_testenv() {
  if up_to_date berth-testenv; then say "berth-testenv (Kubernetes $KUBERNETES_VERSION) is up to date"; return; fi
  local start=$SECONDS total
  cd "$root/testenv"
  say "downloading Go modules for the control plane (Kubernetes $KUBERNETES_VERSION)"
  go mod download 2>&1 | progress modules 0
  total=$(go list -deps ./cmd/berth-testenv | wc -l)
  if [[ ! -x "$bin/berth-testenv" ]]; then
    say "building berth-testenv: $total packages; a first build takes about 5 minutes on 2 cores, later ones seconds"
  else
    say "rebuilding berth-testenv"
  fi
  go build -v -o "$bin/berth-testenv.new" ./cmd/berth-testenv 2>&1 | progress berth-testenv "$total"
  mv "$bin/berth-testenv.new" "$bin/berth-testenv"
  stamp berth-testenv > "$bin/.berth-testenv.stamp"
  say "berth-testenv built in $((SECONDS - start))s"
}

# The OpenID Connect provider the API server's tests log in with.
build_mockidp() {
  if up_to_date mockidp; then say "mockidp is up to date"; return; fi
  say "building mockidp (OpenID Connect provider for tests)"
  (cd "$root/testenv/mockidp" && go build -o "$bin/mockidp.new" . && mv "$bin/mockidp.new" "$bin/mockidp")
  stamp mockidp > "$bin/.mockidp.stamp"
}

# build_module NAME PACKAGE VERSION ESTIMATE
build_module() {
  local name=$1 pkg=$2 version=$3 estimate=$4 start=$SECONDS
  if up_to_date "$name"; then say "$name $version is up to date"; return; fi
  say "building $name $version (a first build takes about $estimate on 2 cores)"
  # A module of its own, outside the project's, so that its dependency
  # versions are exactly the ones it was released with.
  (cd "$root" && GOBIN="$bin" GOFLAGS=-buildvcs=false go install -v "$pkg@$version" 2>&1 | progress "$name" "?")
  stamp "$name" > "$bin/.$name.stamp"
  say "$name built in $((SECONDS - start))s"
}

command -v go >/dev/null || { echo "Go is needed to build the local control plane (https://go.dev)" >&2; exit 1; }
build_testenv
build_mockidp
build_module helm helm.sh/helm/v4/cmd/helm "$HELM_VERSION" "3 minutes"
build_module kustomize sigs.k8s.io/kustomize/kustomize/v5 "$KUSTOMIZE_VERSION" "1 minute"
say "tools are in $bin"
