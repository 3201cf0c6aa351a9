#!/usr/bin/env bash
# `make demo`: bring the stack up and show it working.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

scripts/stack.sh up
# shellcheck disable=SC1091
source "${TROUPE_HOME:-$ROOT/.troupe}/stack.env"
TROUPE=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/troupe

printf '\n== the stack\n'
scripts/stack.sh status
printf '\n== topics (topics.yaml against the broker)\n'
"$TROUPE" topics check
printf '\n== schemas (schemas/ against the registry)\n'
"$TROUPE" schemas check
