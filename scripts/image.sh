#!/usr/bin/env bash
# `make image`: the troupe image (Containerfile) built with podman, tagged $TROUPE_IMAGE
# (default localhost/troupe:dev, what helm/troupe/ci/local-values.yaml runs).
#
# No registry can be pulled from on a machine of this project's CI, so unless
# TROUPE_RUST_IMAGE and TROUPE_RUNTIME_IMAGE name pullable bases, this makes local ones on first
# use: Debian bookworm by debootstrap (minbase) imported into podman, and from it a Rust base laid
# out as the official rust image is (scripts/podman/rust-base.Containerfile). They stay in
# podman's storage under ~/.cache/troupe/containers.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

RUST_VERSION=1.95.0
DEBIAN_SUITE=bookworm
DEBIAN_MIRROR=${TROUPE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
IMAGE=${TROUPE_IMAGE:-localhost/troupe:dev}
LOCAL_BASE=localhost/troupe-base/debian:$DEBIAN_SUITE
LOCAL_RUST=localhost/troupe-base/rust:$RUST_VERSION-$DEBIAN_SUITE
WORK=${TROUPE_CONTAINERS_DIR:-$HOME/.cache/troupe/containers}

say() { printf '\n== %s\n' "$*"; }
die() { echo "image: $*" >&2; exit 1; }
pm() { scripts/podman.sh "$@"; }
have() { pm image exists "$1"; }

debian_base() {
  have "$LOCAL_BASE" && return
  if ! command -v debootstrap >/dev/null; then
    [[ $(id -u) == 0 ]] || die "debootstrap is not installed; run: sudo apt-get install -y debootstrap"
    say "installing debootstrap from Debian's packages (first run only)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap >/dev/null 2>&1 ||
      { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap >/dev/null; } ||
      die "apt-get install debootstrap failed"
  fi
  say "making $LOCAL_BASE with debootstrap (first run only, about 30 s)"
  local rootfs=$WORK/rootfs-$DEBIAN_SUITE
  rm -rf "$rootfs"
  mkdir -p "$WORK"
  debootstrap --variant=minbase "$DEBIAN_SUITE" "$rootfs" "$DEBIAN_MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
    die "debootstrap failed: $(tail -n 1 "$WORK/debootstrap.log")"
  cat >"$rootfs/etc/apt/sources.list" <<LIST
deb $DEBIAN_MIRROR $DEBIAN_SUITE main
deb $DEBIAN_MIRROR $DEBIAN_SUITE-updates main
deb http://deb.debian.org/debian-security $DEBIAN_SUITE-security main
LIST
  # What a slim base leaves out: documentation, manuals, translations, package lists.
  rm -rf "$rootfs"/usr/share/{doc,man,info,locale}/* "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin
  tar -C "$rootfs" -c . | pm import --change 'CMD ["/bin/bash"]' - "$LOCAL_BASE" >/dev/null
  rm -rf "$rootfs"
}

rust_base() {
  have "$LOCAL_RUST" && return
  say "making $LOCAL_RUST (first run only: build packages and rustup, about 2 minutes)"
  local context=$WORK/rust-base-context
  rm -rf "$context" && mkdir -p "$context"
  cp scripts/podman/rust-base.Containerfile "$context/Containerfile"
  cp "${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}" "$context/machine-ca.crt"
  pm build --network host --build-arg "BASE=$LOCAL_BASE" --build-arg "RUST_VERSION=$RUST_VERSION" \
    -t "$LOCAL_RUST" "$context"
}

if [[ -n ${TROUPE_RUST_IMAGE:-} || -n ${TROUPE_RUNTIME_IMAGE:-} ]]; then
  [[ -n ${TROUPE_RUST_IMAGE:-} && -n ${TROUPE_RUNTIME_IMAGE:-} ]] ||
    die "set both TROUPE_RUST_IMAGE and TROUPE_RUNTIME_IMAGE, or neither"
  rust=$TROUPE_RUST_IMAGE runtime=$TROUPE_RUNTIME_IMAGE
else
  debian_base
  rust_base
  rust=$LOCAL_RUST runtime=$LOCAL_BASE
fi

say "podman build $IMAGE (release build of every binary; cold about 15 minutes on 2 cores)"
pm build --network host --build-arg "RUST_IMAGE=$rust" --build-arg "RUNTIME_IMAGE=$runtime" \
  -t "$IMAGE" -f Containerfile .
pm image inspect --format '{{.Id}} {{.Size}} bytes' "$IMAGE"
