"""ctypes mirror of ``include/flux_engine.h`` (ABI 2) and the loaded library, built from the
structs and functions the generated ``_abi.py`` spells as in C.

``tests/test_engine.py`` checks every struct against the layout a C compiler gives the header's,
and that the library's ``*_defaults`` functions write exactly these sizes. Requests and images
are opaque handles (``c_void_p``).
"""

import ctypes
import ctypes.util
import os
import pathlib
import sys

from ._abi import ABI_VERSION, FUNCTIONS, STRUCTS

# The C types of ``_abi`` as ctypes: opaque handles and callbacks are ``c_void_p``, structs their
# mirrors below; the ``*_defaults`` functions take any buffer (a struct of another version).
_SCALARS = {
    "void": None,
    "FluxResult": ctypes.c_int32,
    "int32_t": ctypes.c_int32,
    "uint32_t": ctypes.c_uint32,
    "int64_t": ctypes.c_int64,
    "uint64_t": ctypes.c_uint64,
    "FluxJob": ctypes.c_uint64,
    "uint8_t": ctypes.c_uint8,
    "size_t": ctypes.c_size_t,
    "float": ctypes.c_float,
    "double": ctypes.c_double,
    "bool": ctypes.c_bool,
    "const char *": ctypes.c_char_p,
    "FluxEventCallback": ctypes.c_void_p,
}
_OPAQUE = {"FluxEngine", "FluxRequest", "FluxImage", "void"}
_MIRRORS = {}


def _ctype(c_type, raw=False):
    """The ctypes type of a C type spelt as in ``_abi`` (``uint8_t[16]``: an array)."""
    if c_type in _SCALARS:
        return _SCALARS[c_type]
    if c_type.endswith("]"):
        element, length = c_type[:-1].split("[")
        return _ctype(element) * int(length)
    base = c_type.removeprefix("const ").removeprefix("struct ")
    name, stars = base.rstrip(" *"), base.count("*")
    if name in _OPAQUE or (raw and name in _MIRRORS):
        base_type, stars = ctypes.c_void_p, stars - 1
    else:
        base_type = _MIRRORS.get(name) or _SCALARS[name]
    for _ in range(stars):
        base_type = ctypes.POINTER(base_type)
    return base_type


# The structs' mirrors, field for field (``_abi.STRUCTS``), named without the ``Flux`` prefix.
for _name, _fields in STRUCTS.items():
    _MIRRORS[_name] = type(
        _name.removeprefix("Flux"),
        (ctypes.Structure,),
        {"_fields_": [(field, _ctype(c_type)) for field, c_type in _fields]},
    )
EngineDesc = _MIRRORS["FluxEngineDesc"]
ModelDesc = _MIRRORS["FluxModelDesc"]
ImageDesc = _MIRRORS["FluxImageDesc"]
ExternalMemory = _MIRRORS["FluxExternalMemory"]
Semaphore = _MIRRORS["FluxSemaphore"]
JobStatus = _MIRRORS["FluxJobStatus"]
ResidencyPlan = _MIRRORS["FluxResidencyPlan"]
Residency = _MIRRORS["FluxResidency"]
Event = _MIRRORS["FluxEvent"]

EventCallback = ctypes.CFUNCTYPE(None, ctypes.POINTER(Event), ctypes.c_void_p)

_LIB_NAMES = {"win32": "flux_engine.dll", "darwin": "libflux_engine.dylib"}
_lib = None


def _candidates():
    """Where the library is looked for, in order."""
    env = os.environ.get("FLUX_ENGINE_LIB")
    if env:
        yield env
        return
    name = _LIB_NAMES.get(sys.platform, "libflux_engine.so")
    bundled = pathlib.Path(__file__).resolve().parent / "lib" / name
    if bundled.exists():
        yield str(bundled)
    found = ctypes.util.find_library("flux_engine")
    if found:
        yield found
    yield name


def load_library(path=None):
    """Loads ``libflux_engine`` (``path``; else ``$FLUX_ENGINE_LIB``; else ``flux_engine/lib/``
    inside this package; else the system's library search) and checks its ABI version.

    Called on first use; call it yourself to pick a library explicitly. Returns the
    ``ctypes.CDLL``.
    """
    global _lib
    if _lib is not None and path is None:
        return _lib
    tried = []
    for candidate in [path] if path else _candidates():
        try:
            lib = ctypes.CDLL(candidate)
            break
        except OSError as e:
            tried.append(f"{candidate}: {e}")
    else:
        raise OSError(
            "libflux_engine not found (set FLUX_ENGINE_LIB to its path); tried:\n  "
            + "\n  ".join(tried)
        )
    for name, (restype, params) in FUNCTIONS.items():
        fn = getattr(lib, name)
        fn.restype = _ctype(restype)
        fn.argtypes = [_ctype(p, raw=name.endswith("_defaults")) for p in params]
    got = lib.flux_abi_version()
    if got != ABI_VERSION:
        raise OSError(f"libflux_engine has ABI version {got}; this binding speaks {ABI_VERSION}")
    _lib = lib
    return lib


def defaults(struct):
    """A ``struct`` (an input struct above) holding the library's defaults for this binding's
    size of it, and this binding's ABI version where it has one (what the header's inline
    ``_init`` functions do)."""
    name = _DEFAULTS[struct]
    desc = struct()
    getattr(lib(), name)(ctypes.byref(desc), ctypes.sizeof(struct))
    if struct is EngineDesc:
        desc.abi_version = ABI_VERSION
    return desc


_DEFAULTS = {
    EngineDesc: "flux_engine_desc_defaults",
    ModelDesc: "flux_model_desc_defaults",
    ImageDesc: "flux_image_desc_defaults",
    ExternalMemory: "flux_external_memory_defaults",
    Semaphore: "flux_semaphore_defaults",
    ResidencyPlan: "flux_residency_plan_defaults",
}


def lib():
    """The loaded library (loading it on first use)."""
    return _lib if _lib is not None else load_library()
