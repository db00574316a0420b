"""Bundles the Python binding and the native library into a host's plugin folder or zip; the
``package.py`` of the Blender add-on and the Krita plugin build on it.

    main(__doc__, stage)   # stage(lib, folder) writes the plugin into folder, returns the path
"""

import argparse
import pathlib
import shutil
import tempfile
import zipfile

BINDING = pathlib.Path(__file__).resolve().parent / "flux_engine"
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc")


def copy_package(source, dest):
    """Copies the Python package ``source`` to ``dest`` (replacing it), without caches."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(source, dest, ignore=IGNORE)


def add_binding(package, lib):
    """Puts the binding into ``package/flux_engine`` with the library ``lib`` in its ``lib/``."""
    copy_package(BINDING, package / "flux_engine")
    (package / "flux_engine" / "lib").mkdir()
    shutil.copy2(lib, package / "flux_engine" / "lib" / pathlib.Path(lib).name)


def main(doc, stage, dir_help):
    """The command line of a ``package.py``: ``--lib`` and ``--dir`` and/or ``--zip``."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--lib", required=True, help="the built libflux_engine (.so/.dll/.dylib)")
    ap.add_argument("--dir", help=dir_help)
    ap.add_argument("--zip", help="write an installable zip here")
    args = ap.parse_args()
    if not (args.dir or args.zip):
        ap.error("give --dir and/or --zip")
    if args.dir:
        print(f"wrote {stage(args.lib, pathlib.Path(args.dir))}")
    if args.zip:
        with tempfile.TemporaryDirectory() as tmp:
            stage(args.lib, pathlib.Path(tmp))
            with zipfile.ZipFile(args.zip, "w", zipfile.ZIP_DEFLATED) as z:
                for f in sorted(pathlib.Path(tmp).rglob("*")):
                    z.write(f, f.relative_to(tmp))
        print(f"wrote {args.zip}")
