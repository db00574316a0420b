#!/usr/bin/env bash
# Builds the generated parts of the com.fluxengine.sdk package (run it before using or packing it):
#
#   Runtime/Binding/   the C# binding, copied from its single source, bindings/csharp/FluxEngine/,
#                      with .meta files whose GUIDs derive from the file names (stable across runs)
#   Runtime/Plugins/   with --native DIR: libflux_engine.so, flux_engine.dll and libflux_engine.dylib
#                      found in DIR, copied next to their committed .meta files
#   with --pack DIR:   DIR/com.fluxengine.sdk-VERSION.tgz, for Package Manager's "Add package from tarball"
#
# Usage: sync-binding.sh [--native DIR] [--pack DIR]
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
source_dir="$here/../../bindings/csharp/FluxEngine"
binding="$here/Runtime/Binding"
native=""
pack=""
while [ "$#" -gt 0 ]; do
  case "$1" in
    --native) native="$2"; shift 2 ;;
    --pack) pack="$2"; shift 2 ;;
    *) echo "usage: $0 [--native DIR] [--pack DIR]" >&2; exit 2 ;;
  esac
done

# A Unity GUID (32 hex digits) that depends only on the package path of the asset.
guid() {
  if command -v md5sum >/dev/null; then
    printf 'com.fluxengine.sdk/%s' "$1" | md5sum | cut -c1-32
  else
    md5 -q -s "com.fluxengine.sdk/$1"
  fi
}

rm -rf "$binding" "$binding.meta"
mkdir -p "$binding"
cat > "$binding.meta" <<META
fileFormatVersion: 2
guid: $(guid Runtime/Binding)
folderAsset: yes
DefaultImporter:
  externalObjects: {}
  userData:
  assetBundleName:
  assetBundleVariant:
META
for file in "$source_dir"/*.cs; do
  name="$(basename "$file")"
  cp "$file" "$binding/$name"
  cat > "$binding/$name.meta" <<META
fileFormatVersion: 2
guid: $(guid "Runtime/Binding/$name")
MonoImporter:
  externalObjects: {}
  serializedVersion: 2
  defaultReferences: []
  executionOrder: 0
  icon: {instanceID: 0}
  userData:
  assetBundleName:
  assetBundleVariant:
META
done
echo "copied $(ls "$source_dir"/*.cs | wc -l | tr -d ' ') binding files into Runtime/Binding/"

missing=()
for lib in x86_64/libflux_engine.so x86_64/flux_engine.dll macOS/libflux_engine.dylib; do
  name="$(basename "$lib")"
  if [ -n "$native" ] && [ -f "$native/$name" ]; then
    cp "$native/$name" "$here/Runtime/Plugins/$lib"
  fi
  [ -f "$here/Runtime/Plugins/$lib" ] || missing+=("Runtime/Plugins/$lib")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "warning: no native library for: ${missing[*]} (those platforms cannot load the engine)" >&2
fi

if [ -n "$pack" ]; then
  version="$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$here/package.json")"
  mkdir -p "$pack"
  out="$(cd "$pack" && pwd)/com.fluxengine.sdk-$version.tgz"
  # Unity expects the package under a top-level package/ folder; hidden files stay out.
  tar -czf "$out" -C "$here" --exclude='./.*' --transform 's,^\.,package,' .
  echo "wrote $out"
fi
