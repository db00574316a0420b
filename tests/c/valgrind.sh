#!/usr/bin/env bash
# Runs the C lifecycle test under valgrind memcheck: no invalid reads/writes, no definite leaks.
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
