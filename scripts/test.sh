#!/usr/bin/env bash
# `make test`: what CI runs. Format and lint first (cheap), then every test against the real
# local stack, which this script brings up (and leaves up for the next run to reuse).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

step() { printf '\n== %s\n' "$*"; }

# The test runner: its config (.config/nextest.toml) limits how many saga tests run at once.
NEXTEST_VERSION=0.9.151
TOOLS=${TROUPE_TOOLS_DIR:-$HOME/.cache/troupe/tools}
export PATH=$TOOLS/bin:$PATH
if ! cargo nextest --version 2>/dev/null | grep -q "cargo-nextest $NEXTEST_VERSION"; then
  step "installing cargo-nextest $NEXTEST_VERSION into $TOOLS (first run only: about 6 minutes on 2 cores)"
  cargo install --locked --quiet --root "$TOOLS" cargo-nextest --version "$NEXTEST_VERSION"
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked --quiet -- -D warnings

step "build binaries and tests"
cargo build --workspace --bins --tests --locked --quiet

step "troupe schemas check --offline (every subject's versions against each other)"
"${CARGO_TARGET_DIR:-$ROOT/target}/debug/troupe" schemas check --offline

step "local stack"
scripts/stack.sh up
# shellcheck disable=SC1091
source "${TROUPE_HOME:-$ROOT/.troupe}/stack.env"

step "troupe schemas check (against the registry)"
"${CARGO_TARGET_DIR:-$ROOT/target}/debug/troupe" schemas check

step "tests"
cargo nextest run --workspace --locked --no-fail-fast
