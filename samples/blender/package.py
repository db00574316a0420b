"""Builds the Blender add-on: the add-on sources, the Python binding (bundled as the
``flux_engine`` subpackage) and the native library, as a folder and/or an installable zip
(the same zip works as a legacy add-on in Blender 3.4+ and as a 4.2+ extension).

    python3 samples/blender/package.py --lib target/release/libflux_engine.so --zip flux_engine_blender.zip
"""

import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "bindings" / "python"))
import bundle  # noqa: E402

ADDON = HERE / "flux_engine_blender"


def stage(lib, dest):
    """Writes the add-on folder ``dest/flux_engine_blender`` and returns it."""
    out = pathlib.Path(dest) / ADDON.name
    bundle.copy_package(ADDON, out)
    bundle.add_binding(out, lib)
    return out


if __name__ == "__main__":
    bundle.main(__doc__, stage, "write the add-on folder here (e.g. an addons/ folder)")
