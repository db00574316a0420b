"""The C ABI's enums as ``IntEnum``s, generated into ``_abi.py`` from ``flux_engine.h``, with the
binding's helpers on them."""

from ._abi import (
    CancelOutcome,
    Device,
    DType,
    EventType,
    ExternalMemoryType,
    JobState,
    Kontext,
    LogLevel,
    PixelFormat,
    Result,
    SemaphoreType,
    TextPlacement,
)

_BYTES_PER_PIXEL = {
    PixelFormat.RGB8: 3,
    PixelFormat.RGBA8: 4,
    PixelFormat.RGBA32F: 16,
    PixelFormat.RGBA16F: 8,
    PixelFormat.BGRA8: 4,
    PixelFormat.R8: 1,
}

# Properties added to the generated classes (not members: an IntEnum takes new attributes).
PixelFormat.bytes_per_pixel = property(
    lambda self: _BYTES_PER_PIXEL[self], doc="Bytes one pixel takes."
)
PixelFormat.numpy_dtype = property(
    lambda self: {PixelFormat.RGBA32F: "float32", PixelFormat.RGBA16F: "float16"}.get(self, "uint8"),
    doc="The numpy dtype name of one channel (``uint8``, ``float32`` or ``float16``).",
)
PixelFormat.channels = property(
    lambda self: {PixelFormat.RGB8: 3, PixelFormat.R8: 1}.get(self, 4),
    doc="Channels per pixel.",
)
JobState.finished = property(
    lambda self: self >= JobState.SUCCEEDED,
    doc="True for the terminal states: the job will not change any more.",
)
