#!/usr/bin/env bash
# podman as troupe's scripts and tests run it: installed from Debian's packages on first use
# (podman, runc), with the project's containers.conf and its storage under
# ~/.cache/troupe/containers (images survive `make down` and a new clone).
#
#   scripts/podman.sh ARGS...     podman ARGS... (e.g. images, kube play --network host FILE)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STORE=${TROUPE_CONTAINERS_DIR:-$HOME/.cache/troupe/containers}

if ! command -v podman >/dev/null || ! command -v runc >/dev/null || ! command -v catatonit >/dev/null; then
  [[ $(id -u) == 0 ]] || { echo "podman: not installed; run: sudo apt-get install -y podman runc catatonit" >&2; exit 1; }
  echo "podman: installing podman and runc from Debian's packages (first run only)" >&2
  mkdir -p "$STORE"
  {
    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends podman runc catatonit
  } >"$STORE/install.log" 2>&1 || { echo "podman: apt-get install podman runc catatonit failed: $(tail -n 1 "$STORE/install.log")" >&2; exit 1; }
fi

mkdir -p "$STORE/storage" "$STORE/run"
cat >"$STORE/storage.conf" <<CONF
[storage]
driver = "overlay"
graphroot = "$STORE/storage"
runroot = "$STORE/run"
CONF
export CONTAINERS_CONF=$ROOT/scripts/podman/containers.conf
export CONTAINERS_STORAGE_CONF=$STORE/storage.conf
exec podman "$@"
