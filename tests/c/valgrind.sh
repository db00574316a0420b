#!/usr/bin/env bash
# Runs the C lifecycle test and a short soak under valgrind memcheck: no invalid reads or writes,
# no definite leaks.
# Needs the debug library built by `cargo test --workspace` (target/debug/deps).
set -euo pipefail
cd "$(dirname "$0")/../.."
lib=target/debug/deps
out=target/valgrind
mkdir -p "$out"
cc -std=c11 -pthread -D_POSIX_C_SOURCE=200809L -g -Iinclude tests/c/lifecycle.c -L"$lib" -lflux_engine \
  -Wl,-rpath,"$PWD/$lib" -o "$out/lifecycle"
# Built with the workspace's features, so the dependencies `cargo test --workspace` built are
# reused (`cargo run -p flux-cli` would unify features for flux-cli alone and rebuild candle).
cargo build -q --workspace --bins
target/debug/flux-cli tiny-model --out "$out/model"
valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
  --show-leak-kinds=definite "$out/lifecycle" "$out/model" "$out/gen.rgb" "$out/edit.rgb"

# The soak test, short: two engines (one destroyed with jobs in flight), jobs from four threads.
cargo test -q -p flux-ffi --test soak --no-run
soak=$(ls -t target/debug/deps/soak-* | grep -v '\.d$' | head -1)
FLUX_SOAK_JOBS=8 valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
  --show-leak-kinds=definite "$soak" --test-threads=1
