"""Builds the Krita plugin: the plugin's .desktop file and package, with the Python binding
(bundled as the ``flux_engine`` subpackage) and the native library, as a folder to copy into
Krita's ``pykrita`` resource folder and/or a zip for Tools ▸ Scripts ▸ Import Python Plugin.

    python3 samples/krita/package.py --lib target/release/libflux_engine.so --zip flux_engine_krita.zip
"""

import pathlib
import shutil
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "bindings" / "python"))
import bundle  # noqa: E402

PLUGIN = "flux_engine_krita"


def stage(lib, pykrita):
    """Writes ``pykrita/flux_engine_krita.desktop`` and ``pykrita/flux_engine_krita/``."""
    pykrita = pathlib.Path(pykrita)
    pykrita.mkdir(parents=True, exist_ok=True)
    shutil.copy2(HERE / f"{PLUGIN}.desktop", pykrita)
    bundle.copy_package(HERE / PLUGIN, pykrita / PLUGIN)
    bundle.add_binding(pykrita / PLUGIN, lib)
    return pykrita / PLUGIN


if __name__ == "__main__":
    bundle.main(__doc__, stage, "a pykrita folder to install into (~/.local/share/krita/pykrita)")
