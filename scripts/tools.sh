#!/usr/bin/env bash
# The pinned tools the tests use, installed on first use into $TROUPE_TOOLS_DIR
# (~/.cache/troupe/tools): cargo-nextest from crates.io, helm from the Go module proxy,
# compose-check built from tools/compose-check, kubernetes-validate and podman-compose from
# PyPI, nginx from Debian.
#
#   scripts/tools.sh            install what is missing
#   source scripts/tools.sh     the same, and put $TOOLS/bin on PATH
set -euo pipefail

NEXTEST_VERSION=0.9.151
HELM_VERSION=v4.3.1
TOOLS=${TROUPE_TOOLS_DIR:-$HOME/.cache/troupe/tools}
export PATH=$TOOLS/bin:$PATH

tools_say() { printf '\n== %s\n' "$*"; }

if ! cargo nextest --version 2>/dev/null | grep -q "cargo-nextest $NEXTEST_VERSION"; then
  tools_say "installing cargo-nextest $NEXTEST_VERSION into $TOOLS (first run only: about 6 minutes on 2 cores)"
  cargo install --locked --quiet --root "$TOOLS" cargo-nextest --version "$NEXTEST_VERSION"
fi

if ! "$TOOLS/bin/helm" version --short 2>/dev/null | grep -q "^$HELM_VERSION"; then
  command -v go >/dev/null || { echo "tools: helm needs Go (go install from the module proxy); install golang" >&2; exit 1; }
  tools_say "installing helm $HELM_VERSION into $TOOLS (first run only: go install, a few minutes)"
  mkdir -p "$TOOLS/bin" "$TOOLS/go"
  GOBIN=$TOOLS/bin GOPATH=$TOOLS/go GOMODCACHE=$TOOLS/go/mod GOCACHE=$TOOLS/go/cache GOFLAGS=-modcacherw \
    go install -ldflags "-X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
  # The module and build caches (about 400 MB) are only needed to build it again.
  rm -rf "$TOOLS/go"
fi

# compose-check (tools/compose-check): compose files loaded by compose-go, the library behind
# `docker compose config`, at the version tools/compose-check/go.mod pins.
COMPOSE_CHECK_SUM=$(cat "$(dirname "${BASH_SOURCE[0]}")/../tools/compose-check/"{go.mod,go.sum,main.go} | sha256sum | cut -c1-16)
if [[ $(cat "$TOOLS/compose-check.sum" 2>/dev/null) != "$COMPOSE_CHECK_SUM" ]]; then
  command -v go >/dev/null || { echo "tools: compose-check needs Go; install golang" >&2; exit 1; }
  tools_say "building compose-check into $TOOLS (first run only: under a minute)"
  mkdir -p "$TOOLS/bin" "$TOOLS/go"
  (cd "$(dirname "${BASH_SOURCE[0]}")/../tools/compose-check" &&
    GOPATH=$TOOLS/go GOMODCACHE=$TOOLS/go/mod GOCACHE=$TOOLS/go/cache GOFLAGS=-modcacherw \
      go build -o "$TOOLS/bin/compose-check" .)
  rm -rf "$TOOLS/go"
  echo "$COMPOSE_CHECK_SUM" >"$TOOLS/compose-check.sum"
fi

# kubernetes-validate (PyPI): the Kubernetes API's JSON schemas of each version, offline, for
# every object the chart renders (tests/chart.rs).
KUBERNETES_VALIDATE_VERSION=1.37.0
if ! "$TOOLS/venv/bin/kubernetes-validate" --version 2>/dev/null | grep -q "$KUBERNETES_VALIDATE_VERSION"; then
  tools_say "installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION into $TOOLS/venv (first run only)"
  python3 -m venv "$TOOLS/venv"
  "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
fi
ln -sf "$TOOLS/venv/bin/kubernetes-validate" "$TOOLS/bin/kubernetes-validate"

# podman-compose (PyPI): runs compose/local.yaml's processes under podman (tests/compose.rs).
PODMAN_COMPOSE_VERSION=1.6.0
if ! "$TOOLS/venv/bin/podman-compose" --version 2>/dev/null | grep -q "podman-compose version $PODMAN_COMPOSE_VERSION"; then
  tools_say "installing podman-compose $PODMAN_COMPOSE_VERSION into $TOOLS/venv (first run only)"
  "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check "podman-compose==$PODMAN_COMPOSE_VERSION"
fi
ln -sf "$TOOLS/venv/bin/podman-compose" "$TOOLS/bin/podman-compose"

# nginx (Debian): the TLS-terminating, basic-auth proxy tests/security.rs puts in front of the
# registry, as deployments commonly do, to test the registry client's TLS and credentials.
if ! command -v nginx >/dev/null && ! [[ -x /usr/sbin/nginx ]]; then
  [[ $(id -u) == 0 ]] || { echo "tools: nginx is not installed; run: sudo apt-get install -y nginx-light" >&2; exit 1; }
  tools_say "installing nginx-light from Debian's packages (first run only)"
  { DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx-light ||
    { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx-light; }; } >/dev/null 2>&1 ||
    { echo "tools: apt-get install nginx-light failed" >&2; exit 1; }
  # The package starts a server on port 80; the tests start their own.
  service nginx stop >/dev/null 2>&1 || pkill -x nginx || true
fi
