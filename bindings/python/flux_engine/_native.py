"""ctypes mirror of ``include/flux_engine.h`` (ABI 2) and the loaded library.

Every struct here must match the header field for field: ``tests/test_engine.py`` checks each
against the layout a C compiler gives the header's struct, and that the library's ``*_defaults``
functions write exactly these sizes. Requests and images are opaque handles (``c_void_p``).
"""

import ctypes
import ctypes.util
import os
import pathlib
import sys

from ._abi import ABI_VERSION

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

_P = ctypes.POINTER
_R = ctypes.c_int32  # FluxResult
_JOB = ctypes.c_uint64
_ENGINE = ctypes.c_void_p
_REQUEST = ctypes.c_void_p
_IMAGE = ctypes.c_void_p
_U32, _U64 = ctypes.c_uint32, ctypes.c_uint64

# name: (restype, argtypes)
_SIGNATURES = {
    "flux_version": (c_char_p, []),
    "flux_abi_version": (_U32, []),
    "flux_last_error_message": (c_char_p, []),
    "flux_engine_desc_defaults": (None, [ctypes.c_void_p, _U32]),
    "flux_engine_create": (_R, [_P(EngineDesc), _P(_ENGINE)]),
    "flux_engine_destroy": (_R, [_ENGINE]),
    "flux_engine_device_uuid": (_R, [_ENGINE, ctypes.c_uint8 * 16]),
    "flux_model_desc_defaults": (None, [ctypes.c_void_p, _U32]),
    "flux_engine_load_model": (_R, [_ENGINE, _P(ModelDesc), _P(_JOB)]),
    "flux_engine_unload_model": (_R, [_ENGINE, ctypes.c_int32, _P(_JOB)]),
    "flux_request_create": (_R, [_P(_REQUEST)]),
    "flux_request_destroy": (_R, [_REQUEST]),
    "flux_request_set_prompt": (_R, [_REQUEST, c_char_p]),
    "flux_request_set_size": (_R, [_REQUEST, _U32, _U32]),
    "flux_request_set_seed": (_R, [_REQUEST, _U64]),
    "flux_request_set_steps": (_R, [_REQUEST, _U32]),
    "flux_request_set_guidance": (_R, [_REQUEST, ctypes.c_float]),
    "flux_request_set_t5_length": (_R, [_REQUEST, _U32]),
    "flux_request_set_priority": (_R, [_REQUEST, ctypes.c_int32]),
    "flux_request_add_reference": (_R, [_REQUEST, _IMAGE, _U64]),
    "flux_request_set_reference_snap": (_R, [_REQUEST, ctypes.c_bool]),
    "flux_request_set_init_image": (_R, [_REQUEST, _IMAGE, _U64, ctypes.c_float]),
    "flux_request_set_fill": (_R, [_REQUEST, _IMAGE, _U64, _IMAGE]),
    "flux_request_set_control_image": (_R, [_REQUEST, _IMAGE, _U64]),
    "flux_request_set_negative_prompt": (_R, [_REQUEST, c_char_p, ctypes.c_float]),
    "flux_request_add_redux_image": (_R, [_REQUEST, _IMAGE, _U64]),
    "flux_request_clear_images": (_R, [_REQUEST]),
    "flux_request_add_lora": (_R, [_REQUEST, c_char_p, ctypes.c_float]),
    "flux_request_clear_loras": (_R, [_REQUEST]),
    "flux_engine_submit": (_R, [_ENGINE, _REQUEST, _P(_JOB)]),
    "flux_image_desc_defaults": (None, [ctypes.c_void_p, _U32]),
    "flux_external_memory_defaults": (None, [ctypes.c_void_p, _U32]),
    "flux_semaphore_defaults": (None, [ctypes.c_void_p, _U32]),
    "flux_image_create_host": (
        _R, [_P(ImageDesc), ctypes.c_void_p, ctypes.c_size_t, _P(_IMAGE)]
    ),
    "flux_image_create_cuda": (
        _R, [_ENGINE, _P(ImageDesc), _U64, _P(Semaphore), _P(_IMAGE)]
    ),
    "flux_image_import_memory": (
        _R, [_ENGINE, _P(ImageDesc), _P(ExternalMemory), _P(Semaphore), _P(_IMAGE)]
    ),
    "flux_image_destroy": (_R, [_IMAGE]),
    "flux_job_write_image": (_R, [_ENGINE, _JOB, _IMAGE, _U64]),
    "flux_job_cancel": (_R, [_ENGINE, _JOB, _P(ctypes.c_int32)]),
    "flux_job_status": (_R, [_ENGINE, _JOB, _P(JobStatus)]),
    "flux_job_wait": (_R, [_ENGINE, _JOB, _U32, _P(ctypes.c_int32)]),
    "flux_job_error": (_R, [_ENGINE, _JOB]),
    "flux_job_image_size": (_R, [_ENGINE, _JOB, _P(_U32), _P(_U32)]),
    "flux_job_save_image": (_R, [_ENGINE, _JOB, c_char_p]),
    "flux_job_release": (_R, [_ENGINE, _JOB]),
    "flux_engine_poll_event": (_R, [_ENGINE, _P(Event)]),
    "flux_engine_set_memory_budget": (_R, [_ENGINE, _U64]),
    "flux_engine_get_residency": (_R, [_ENGINE, _P(Residency)]),
    "flux_engine_set_memory_reserve": (_R, [_ENGINE, _U64]),
    "flux_engine_set_residency_plan": (_R, [_ENGINE, _P(ResidencyPlan)]),
    "flux_residency_plan_defaults": (None, [ctypes.c_void_p, _U32]),
}

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
    for name, (restype, argtypes) in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
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
