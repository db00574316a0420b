"""ctypes mirror of ``include/flux_engine.h`` (ABI 2) and the loaded library; the functions' C
signatures come from the generated ``_abi.py``.

Every struct here must match the header field for field: ``tests/test_engine.py`` checks each
against the layout a C compiler gives the header's struct, and that the library's ``*_defaults``
functions write exactly these sizes. Requests and images are opaque handles (``c_void_p``).
"""

import ctypes
import ctypes.util
import os
import pathlib
import sys

from ._abi import ABI_VERSION, FUNCTIONS

c_char_p = ctypes.c_char_p
c_u8_p = ctypes.POINTER(ctypes.c_uint8)


class EngineDesc(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("abi_version", ctypes.c_uint32),
        ("device", ctypes.c_int32),
        ("device_index", ctypes.c_uint32),
        ("memory_budget", ctypes.c_uint64),
        ("preview_every", ctypes.c_uint32),
        ("embedding_cache", ctypes.c_uint32),
        ("log_level", ctypes.c_int32),
        ("callback", ctypes.c_void_p),
        ("user_data", ctypes.c_void_p),
        ("memory_reserve", ctypes.c_uint64),
    ]


class ModelDesc(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("folder", c_char_p),
        ("transformer", c_char_p),
        ("ae", c_char_p),
        ("t5", c_char_p),
        ("clip", c_char_p),
        ("t5_tokenizer", c_char_p),
        ("clip_tokenizer", c_char_p),
        ("dtype", ctypes.c_int32),
        ("kontext", ctypes.c_int32),
        ("priority", ctypes.c_int32),
        ("reserved", ctypes.c_uint32),
    ]


class ImageDesc(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("width", ctypes.c_uint32),
        ("height", ctypes.c_uint32),
        ("format", ctypes.c_int32),
        ("row_pitch", ctypes.c_uint64),
        ("bottom_up", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32),
    ]


class ExternalMemory(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("handle_type", ctypes.c_int32),
        ("handle", ctypes.c_int64),
        ("size", ctypes.c_uint64),
        ("offset", ctypes.c_uint64),
        ("device_uuid", ctypes.c_uint8 * 16),
        ("dedicated", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32),
    ]


class Semaphore(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("handle_type", ctypes.c_int32),
        ("handle", ctypes.c_int64),
    ]


class JobStatus(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("state", ctypes.c_int32),
        ("step", ctypes.c_uint32),
        ("total", ctypes.c_uint32),
        ("has_result", ctypes.c_uint32),
    ]


class ResidencyPlan(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("text_placement", ctypes.c_int32),
        ("stream_window", ctypes.c_uint32),
        ("stream_from_files", ctypes.c_uint32),
        ("resident_blocks", ctypes.c_uint32),
        ("tiled_vae", ctypes.c_uint32),
    ]


class Residency(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("budget", ctypes.c_uint64),
        ("transformer", ctypes.c_uint64),
        ("autoencoder", ctypes.c_uint64),
        ("text_encoders", ctypes.c_uint64),
        ("release_text_encoders", ctypes.c_uint32),
        ("host", ctypes.c_uint64),
        ("text_placement", ctypes.c_int32),
        ("stream_window", ctypes.c_uint32),
        ("stream_from_files", ctypes.c_uint32),
        ("resident_blocks", ctypes.c_uint32),
        ("tiled_vae", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32),
    ]


class Event(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("kind", ctypes.c_int32),
        ("job", ctypes.c_uint64),
        ("step", ctypes.c_uint32),
        ("total", ctypes.c_uint32),
        ("elapsed_ms", ctypes.c_double),
        ("eta_ms", ctypes.c_double),
        ("preview_width", ctypes.c_uint32),
        ("preview_height", ctypes.c_uint32),
        ("preview_rgb", c_u8_p),
        ("message", c_char_p),
        ("log_level", ctypes.c_int32),
        ("text_ms", ctypes.c_double),
        ("denoise_ms", ctypes.c_double),
        ("decode_ms", ctypes.c_double),
        ("embedding_cached", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32),
    ]


EventCallback = ctypes.CFUNCTYPE(None, ctypes.POINTER(Event), ctypes.c_void_p)

# The C types of ``_abi.FUNCTIONS`` as ctypes: opaque handles are ``c_void_p``, structs their
# mirrors above; the ``*_defaults`` functions take any buffer (a struct of another version).
_SCALARS = {
    "void": None,
    "FluxResult": ctypes.c_int32,
    "int32_t": ctypes.c_int32,
    "uint32_t": ctypes.c_uint32,
    "uint64_t": ctypes.c_uint64,
    "FluxJob": ctypes.c_uint64,
    "uint8_t": ctypes.c_uint8,
    "size_t": ctypes.c_size_t,
    "float": ctypes.c_float,
    "bool": ctypes.c_bool,
    "const char *": c_char_p,
}
_OPAQUE = {"FluxEngine", "FluxRequest", "FluxImage", "void"}
_MIRRORS = {
    "Flux" + s.__name__: s
    for s in (
        EngineDesc, ModelDesc, ImageDesc, ExternalMemory, Semaphore, JobStatus, ResidencyPlan,
        Residency, Event,
    )
}


def _ctype(c_type, raw=False):
    """The ctypes type of a C type spelt as in ``_abi.FUNCTIONS``."""
    if c_type in _SCALARS:
        return _SCALARS[c_type]
    base = c_type.removeprefix("const ").removeprefix("struct ")
    name, stars = base.rstrip(" *"), base.count("*")
    if name in _OPAQUE or (raw and name in _MIRRORS):
        base_type, stars = ctypes.c_void_p, stars - 1
    else:
        base_type = _MIRRORS.get(name) or _SCALARS[name]
    for _ in range(stars):
        base_type = ctypes.POINTER(base_type)
    return base_type


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
