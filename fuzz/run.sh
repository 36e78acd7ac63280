#!/usr/bin/env bash
# Run one fuzz target: ./fuzz/run.sh TARGET [SECONDS] [extra libFuzzer flags...]
# The grown corpus goes to fuzz/corpus/TARGET (ignored by git), seeded from fuzz/seeds/TARGET;
# crashes go to fuzz/artifacts/TARGET. Stable toolchains need RUSTC_BOOTSTRAP=1 for cargo-fuzz's
# -Z flags; the targets are safe Rust, so no sanitizer is needed (panics and integer overflow,
# checked because cargo-fuzz builds with debug assertions, are what the fuzzers look for).
set -euo pipefail
cd "$(dirname "$0")"
target=$1
secs=${2:-600}
shift $(( $# >= 2 ? 2 : 1 ))
mkdir -p "corpus/$target"
RUSTC_BOOTSTRAP=1 exec cargo fuzz run --sanitizer none "$target" "corpus/$target" "seeds/$target" -- \
  -max_total_time="$secs" -max_len=65536 -timeout=10 -print_final_stats=1 "$@"
