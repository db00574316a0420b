"""Events an engine reports (progress, previews, completion, log lines)."""

import ctypes
from dataclasses import dataclass
from typing import Optional

from .enums import EventType, LogLevel


@dataclass(frozen=True)
class Event:
    """One event, copied out of the library (safe to keep)."""

    kind: EventType
    job: int
    step: int = 0
    total: int = 0
    elapsed_ms: float = 0.0
    eta_ms: float = 0.0
    #: PREVIEW: tightly packed RGB8 pixels of ``preview_size``.
    preview_rgb: Optional[bytes] = None
    preview_size: tuple = (0, 0)
    #: FAILED: the error; LOG: the line.
    message: Optional[str] = None
    log_level: Optional[LogLevel] = None
    #: FINISHED: stage timings (ms) and whether the prompt embedding came from the cache.
    text_ms: float = 0.0
    denoise_ms: float = 0.0
    decode_ms: float = 0.0
    embedding_cached: bool = False

    @classmethod
    def from_native(cls, e):
        kind = EventType(e.kind)
        preview = None
        if kind == EventType.PREVIEW and e.preview_rgb:
            preview = ctypes.string_at(e.preview_rgb, e.preview_width * e.preview_height * 3)
        return cls(
            kind=kind,
            job=e.job,
            step=e.step,
            total=e.total,
            elapsed_ms=e.elapsed_ms,
            eta_ms=e.eta_ms,
            preview_rgb=preview,
            preview_size=(e.preview_width, e.preview_height),
            message=e.message.decode("utf-8", "replace") if e.message else None,
            log_level=LogLevel(e.log_level) if kind == EventType.LOG else None,
            text_ms=e.text_ms,
            denoise_ms=e.denoise_ms,
            decode_ms=e.decode_ms,
            embedding_cached=bool(e.embedding_cached),
        )
