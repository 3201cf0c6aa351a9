#!/usr/bin/env bash
# `make test`: what CI runs. Format and lint first (cheap), then every test against the real
# local stack, which this script brings up (and leaves up for the next run to reuse).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

step() { printf '\n== %s\n' "$*"; }

# The pinned tools: cargo-nextest (its config, .config/nextest.toml, limits how many saga tests
# run at once) and helm (the chart's tests).
# shellcheck source=tools.sh
source scripts/tools.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked --quiet -- -D warnings

step "build binaries and tests"
cargo build --workspace --bins --tests --locked --quiet

step "troupe schemas check --offline (every subject's versions against each other)"
"${CARGO_TARGET_DIR:-$ROOT/target}/debug/troupe" schemas check --offline

step "container image (podman; the pods test runs it)"
scripts/image.sh

step "local stack"
scripts/stack.sh up
# shellcheck disable=SC1091
source "${TROUPE_HOME:-$ROOT/.troupe}/stack.env"

step "troupe schemas check (against the registry)"
"${CARGO_TARGET_DIR:-$ROOT/target}/debug/troupe" schemas check

step "tests"
cargo nextest run --workspace --locked --no-fail-fast

step "fuzz: every target for 20 s from the committed seeds (make fuzz runs them for 10 min)"
scripts/fuzz.sh 20
