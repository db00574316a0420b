#!/usr/bin/env bash
# Copies an installed Flux Engine (flux-install PREFIX) into the Unreal plugin's layout:
#
#   PREFIX/include/flux_engine.h -> FluxEngine/Source/ThirdParty/FluxEngineLibrary/include/
#   PREFIX/lib/<library files>   -> FluxEngine/Binaries/ThirdParty/FluxEngineLibrary/<Platform>/
#
#   samples/unreal/stage-library.sh PREFIX [Win64|Linux|Mac]
#
# The platform defaults to this machine's (Git Bash / MSYS counts as Win64). On the Mac the
# staged dylib gets the install name @rpath/libflux_engine.dylib (cargo leaves its build path
# there), which the rpaths Unreal's linker adds can find, and is signed again ad hoc.
set -euo pipefail

usage() {
  echo "usage: $0 PREFIX [Win64|Linux|Mac]" >&2
  exit 2
}

[ $# -ge 1 ] && [ $# -le 2 ] || usage
prefix=$1
if [ $# -eq 2 ]; then
  platform=$2
else
  case "$(uname -s)" in
    Linux) platform=Linux ;;
    Darwin) platform=Mac ;;
    MINGW* | MSYS* | CYGWIN*) platform=Win64 ;;
    *) echo "$0: unknown platform $(uname -s); name it: Win64, Linux or Mac" >&2; exit 2 ;;
  esac
fi

case "$platform" in
  Win64) libraries=(flux_engine.dll flux_engine.dll.lib) ;;
  Linux) libraries=(libflux_engine.so) ;;
  Mac) libraries=(libflux_engine.dylib) ;;
  *) usage ;;
esac

plugin="$(cd "$(dirname "$0")" && pwd)/FluxEngine"
include_dir="$plugin/Source/ThirdParty/FluxEngineLibrary/include"
library_dir="$plugin/Binaries/ThirdParty/FluxEngineLibrary/$platform"

header="$prefix/include/flux_engine.h"
[ -f "$header" ] || { echo "$0: $header not found; install first: cargo run --release -p flux-ffi --bin flux-install -- $prefix" >&2; exit 1; }
for name in "${libraries[@]}"; do
  [ -f "$prefix/lib/$name" ] || { echo "$0: $prefix/lib/$name not found (a $platform build installed into $prefix?)" >&2; exit 1; }
done

mkdir -p "$include_dir" "$library_dir"
cp "$header" "$include_dir/"
for name in "${libraries[@]}"; do
  cp "$prefix/lib/$name" "$library_dir/"
done

if [ "$platform" = Mac ]; then
  dylib="$library_dir/libflux_engine.dylib"
  install_name_tool -id @rpath/libflux_engine.dylib "$dylib"
  codesign --force --sign - "$dylib"
fi

echo "staged $platform library and header into $plugin"
