"""Python binding of the Flux Engine SDK: FLUX.1 text-to-image and Kontext editing through
``libflux_engine``'s C ABI (ctypes; no compiled extension).

    import flux_engine as fe
    with fe.Engine() as engine:
        engine.load_model("models/FLUX.1-schnell").wait()
        with engine.text_to_image("a lighthouse at dusk", width=512, height=512) as job:
            image = job.result()          # fe.Image, RGBA8; .to_numpy() with numpy
            job.save("lighthouse.png")
"""

from ._native import ABI_VERSION, load_library
from .engine import Engine, Job, JobStatus, Plan, Residency
from .enums import (
    CancelOutcome,
    Device,
    DType,
    EventType,
    JobState,
    LogLevel,
    PixelFormat,
    Result,
    TextPlacement,
)
from .errors import FluxError
from .events import Event
from .images import Image


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
    "FluxError",
    "Image",
    "Job",
    "JobState",
    "JobStatus",
    "LogLevel",
    "PixelFormat",
    "Plan",
    "Residency",
    "Result",
    "TextPlacement",
    "load_library",
    "version",
]
