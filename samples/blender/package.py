"""Builds the Blender add-on: the add-on sources, the Python binding (bundled as the
``flux_engine`` subpackage) and the native library, as a folder and/or an installable zip
(the same zip works as a legacy add-on in Blender 3.4+ and as a 4.2+ extension).

    python3 samples/blender/package.py --lib target/release/libflux_engine.so --zip flux_engine_blender.zip
"""

import argparse
import pathlib
import shutil
import tempfile
import zipfile

HERE = pathlib.Path(__file__).resolve().parent
ADDON = HERE / "flux_engine_blender"
BINDING = HERE.parents[1] / "bindings" / "python" / "flux_engine"
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc")


def stage(lib, dest):
    """Writes the add-on folder ``dest/flux_engine_blender`` and returns it."""
    out = pathlib.Path(dest) / ADDON.name
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(ADDON, out, ignore=IGNORE)
    shutil.copytree(BINDING, out / "flux_engine", ignore=IGNORE)
    (out / "flux_engine" / "lib").mkdir()
    shutil.copy2(lib, out / "flux_engine" / "lib" / pathlib.Path(lib).name)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lib", required=True, help="the built libflux_engine (.so/.dll/.dylib)")
    ap.add_argument("--dir", help="write the add-on folder here (e.g. an addons/ folder)")
    ap.add_argument("--zip", help="write an installable zip here")
    args = ap.parse_args()
    if not (args.dir or args.zip):
        ap.error("give --dir and/or --zip")
    if args.dir:
        print(f"wrote {stage(args.lib, args.dir)}")
    if args.zip:
        with tempfile.TemporaryDirectory() as tmp:
            folder = stage(args.lib, tmp)
            with zipfile.ZipFile(args.zip, "w", zipfile.ZIP_DEFLATED) as z:
                for f in sorted(folder.rglob("*")):
                    z.write(f, f.relative_to(folder.parent))
        print(f"wrote {args.zip}")


if __name__ == "__main__":
    main()
