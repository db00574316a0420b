#!/usr/bin/env bash
# Builds the C# binding (FluxEngine.dll) and its smoke test with mcs, then runs the test with mono.
#
#   run.sh OUT_DIR
#
# The test reads FLUX_TEST_MODEL, FLUX_TEST_EXPECTED, FLUX_TEST_OUT, FLUX_ABI_LAYOUT and
# FLUX_TEST_LORAS (see SmokeTest.cs; the last defaults to the repository's
# tests/fixtures/flux-lora) and finds libflux_engine through LD_LIBRARY_PATH. Exits nonzero when the build
# or any check fails.
set -euo pipefail

if [ "$#" -ne 1 ]; then
  echo "usage: $0 OUT_DIR" >&2
  exit 2
fi
here="$(cd "$(dirname "$0")" && pwd)"
out="$1"
mkdir -p "$out"
export FLUX_TEST_LORAS="${FLUX_TEST_LORAS:-$(cd "$here/../../.." && pwd)/tests/fixtures/flux-lora}"

# -warnaserror with -doc: an undocumented public member fails the build.
mcs -target:library -warnaserror -doc:"$out/FluxEngine.xml" -out:"$out/FluxEngine.dll" "$here"/../FluxEngine/*.cs
mcs -warnaserror -r:"$out/FluxEngine.dll" -out:"$out/SmokeTest.exe" "$here/SmokeTest.cs"
mono --debug "$out/SmokeTest.exe"
