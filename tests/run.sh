#!/usr/bin/env bash
# README "Tests": installs what the suite needs when it is missing, then runs every test.
#
# Needed beside Rust: a C/C++ compiler, CMake, pkg-config and nm (the C/C++ tests and the
# installed-package test), valgrind (.ci/run's memcheck), and for the host tests Python with pytest
# and numpy, mono (mcs, mono), Blender with the system Python's numpy, Krita with PyQt5, Godot 3
# with Mesa's software OpenGL, and Xvfb (xvfb-run) for the last two. On Debian/Ubuntu the
# missing ones are installed with apt-get (as root, or through sudo); elsewhere they are listed and
# the tests that need them say SKIPPED (or fail, for the C toolchain).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for tool in cc c++ cmake pkg-config valgrind nm blender mcs mono krita xvfb-run godot3; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ -x /usr/bin/python3 ] && ! /usr/bin/python3 -c "import numpy" 2>/dev/null; then
  missing+=(python3-numpy)
fi
if [ -x /usr/bin/python3 ] && ! /usr/bin/python3 -c "import PyQt5" 2>/dev/null; then
  missing+=(python3-pyqt5)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "tests/run.sh: installing what the tests need (missing: ${missing[*]})"
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  if command -v apt-get >/dev/null; then
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq \
      gcc g++ cmake pkg-config valgrind binutils blender python3-numpy \
      mono-mcs mono-runtime libmono-system-core4.0-cil >/dev/null
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
      krita python3-pyqt5 xvfb xauth godot3 libgl1-mesa-dri >/dev/null
  else
    echo "tests/run.sh: no apt-get here; install these yourself: ${missing[*]}" >&2
  fi
fi
if ! python3 -c "import pytest, numpy" 2>/dev/null; then
  python3 -m pip install -q pytest numpy ||
    python3 -m pip install -q --break-system-packages pytest numpy
fi

cargo test --workspace
