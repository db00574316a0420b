"""Python binding of the Flux Engine SDK: FLUX.1 text-to-image, Kontext editing and
image-to-image through ``libflux_engine``'s C ABI (ctypes; no compiled extension).

    import flux_engine as fe
    with fe.Engine() as engine:
        engine.load_model("models/FLUX.1-schnell").wait()
        with engine.text_to_image("a lighthouse at dusk", width=512, height=512) as job:
            image = job.result()          # fe.Image, RGBA8; .to_numpy() with numpy
            job.save("lighthouse.png")

A job is described by a ``Request`` (``Engine.submit``), which ``text_to_image``, ``edit`` and
``image_to_image`` build for you; pixels in and out are ``Image`` objects (or numpy arrays).
"""

from ._abi import ABI_VERSION, PRIORITY_BATCH, PRIORITY_INTERACTIVE, PRIORITY_NORMAL
from ._native import load_library
from .engine import Engine, Job, JobStatus, Plan, Residency
from .enums import *  # noqa: F403 (the C ABI's enums, with their helpers)
from .errors import FluxError
from .events import Event
from .images import ExternalMemory, Image, Semaphore
from .requests import Request


def version():
    """The library's version string."""
    from ._native import lib

    return lib().flux_version().decode()


__all__ = [
    "ABI_VERSION",
    "CancelOutcome",
    "Device",
    "DType",
    "Engine",
    "Event",
    "EventType",
    "ExternalMemory",
    "ExternalMemoryType",
    "FluxError",
    "Image",
    "Job",
    "JobState",
    "JobStatus",
    "Kontext",
    "LogLevel",
    "PRIORITY_BATCH",
    "PRIORITY_INTERACTIVE",
    "PRIORITY_NORMAL",
    "Request",
    "PixelFormat",
    "Plan",
    "Residency",
    "Result",
    "Semaphore",
    "SemaphoreType",
    "TextPlacement",
    "load_library",
    "version",
]
