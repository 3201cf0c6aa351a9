#!/usr/bin/env bash
# Fuzzing (cargo-fuzz, libFuzzer with AddressSanitizer): every target in fuzz/, each for a
# time, starting from the committed seeds in fuzz/corpus/.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]    default: 20 s for each target (what `make test` runs)
#   make fuzz                                10 minutes for each target (docs/fuzzing.md)
#
# Inputs libFuzzer finds go to ~/.cache/troupe/fuzz/corpus (the committed seeds stay as they
# are); a crash stops the run with the input saved under fuzz/artifacts/TARGET/.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
SECONDS_EACH=${1:-20}
shift || true
CARGO_FUZZ_VERSION=0.13.2
TOOLS=${TROUPE_TOOLS_DIR:-$HOME/.cache/troupe/tools}
WORK=${TROUPE_FUZZ_DIR:-$HOME/.cache/troupe/fuzz}
export PATH=$TOOLS/bin:$PATH

if ! cargo fuzz --version 2>/dev/null | grep -q "cargo-fuzz $CARGO_FUZZ_VERSION"; then
  printf '\n== installing cargo-fuzz %s into %s (first run only: about 2 minutes)\n' "$CARGO_FUZZ_VERSION" "$TOOLS"
  cargo install --locked --quiet --root "$TOOLS" cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi

# libFuzzer needs the sanitizer flags only a nightly compiler accepts. Use the nightly
# toolchain when rustup has one; else let the stable compiler take nightly flags.
if rustup run nightly rustc --version >/dev/null 2>&1; then
  TOOLCHAIN=(+nightly)
else
  TOOLCHAIN=()
  export RUSTC_BOOTSTRAP=1
fi

mapfile -t TARGETS < <(if (($#)); then printf '%s\n' "$@"; else cargo fuzz list; fi)
export CARGO_TARGET_DIR=$WORK/target
for target in "${TARGETS[@]}"; do
  mkdir -p "$WORK/corpus/$target"
  printf '\n== fuzz %s for %s s\n' "$target" "$SECONDS_EACH"
  log=$WORK/$target.log
  status=0
  cargo "${TOOLCHAIN[@]}" fuzz run "$target" "$WORK/corpus/$target" "fuzz/corpus/$target" -- \
    -max_total_time="$SECONDS_EACH" -print_final_stats=1 >"$log" 2>&1 || status=$?
  grep -E '^(INFO: seed corpus|stat::number_of_executed_units|stat::new_units_added|Done [0-9]+ runs)' "$log" || true
  if ((status)); then
    tail -n 40 "$log" >&2
    echo "fuzz: $target failed (exit $status); the input is under fuzz/artifacts/$target/, the log in $log" >&2
    exit 1
  fi
done
