#!/usr/bin/env bash
# Builds the sample's GDNative library and puts it, with libflux_engine, into project/bin/.
#
#   samples/godot/build.sh target/release            # the folder holding libflux_engine.so
#   samples/godot/build.sh target/release OUT_BIN    # another project's bin/ folder
#
# The GDNative C headers of Godot 3.x (godot_headers, MIT) come from crates.io, where the
# package gdnative-sys ships them: cargo fetches it (no build) and tar takes the headers out.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
lib_dir=$(cd "${1:?usage: build.sh LIB_DIR [OUT_BIN]}" && pwd)
bin=${2:-$here/project/bin}
version=0.11.3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

crate=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/gdnative-sys-$version.crate 2>/dev/null | head -n1 || true)
if [ -z "$crate" ]; then
  mkdir "$work/fetch"
  printf '[package]\nname = "fetch-godot-headers"\nversion = "0.0.0"\nedition = "2021"\n[lib]\npath = "lib.rs"\n[dependencies]\ngdnative-sys = "=%s"\n' \
    "$version" > "$work/fetch/Cargo.toml"
  touch "$work/fetch/lib.rs"
  cargo fetch -q --manifest-path "$work/fetch/Cargo.toml"
  crate=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/gdnative-sys-$version.crate | head -n1)
fi
tar xzf "$crate" -C "$work" "gdnative-sys-$version/godot_headers"

mkdir -p "$bin"
cc -std=c11 -shared -fPIC -O2 -Wall -Wextra -Werror \
  -isystem "$work/gdnative-sys-$version/godot_headers" -I "$root/include" \
  "$here/gdnative/flux_godot.c" -L "$lib_dir" -lflux_engine -Wl,-rpath,'$ORIGIN' \
  -o "$bin/libflux_godot.so"
cp "$lib_dir/libflux_engine.so" "$bin/"
echo "built $bin/libflux_godot.so"
