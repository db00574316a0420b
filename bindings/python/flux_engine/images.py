"""Images crossing the boundary: results copied out of a job, and inputs for edits."""

import ctypes
from dataclasses import dataclass

from . import _native
from .enums import PixelFormat


@dataclass(frozen=True)
class Image:
    """Tightly packed pixels, rows top to bottom. ``data`` holds ``height × width ×
    format.bytes_per_pixel`` bytes (RGBA32F: native-endian floats in [0, 1])."""

    width: int
    height: int
    format: PixelFormat
    data: bytes

    def to_numpy(self):
        """A ``(height, width, channels)`` array: uint8 for RGB8/RGBA8, float32 for RGBA32F
        (needs numpy)."""
        import numpy as np

        dtype, channels = {
            PixelFormat.RGB8: (np.uint8, 3),
            PixelFormat.RGBA8: (np.uint8, 4),
            PixelFormat.RGBA32F: (np.float32, 4),
        }[self.format]
        return np.frombuffer(self.data, dtype=dtype).reshape(self.height, self.width, channels)

    @classmethod
    def from_numpy(cls, array):
        """An RGB8 or RGBA8 image from a ``(height, width, 3 | 4)`` uint8 array."""
        import numpy as np

        if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] not in (3, 4):
            raise ValueError(
                f"expected a (height, width, 3|4) uint8 array, got {array.dtype} {array.shape}"
            )
        fmt = PixelFormat.RGB8 if array.shape[2] == 3 else PixelFormat.RGBA8
        height, width = array.shape[:2]
        return cls(width, height, fmt, np.ascontiguousarray(array).tobytes())


def as_image(value):
    """Accepts an ``Image`` or a numpy array; returns an ``Image``."""
    if isinstance(value, Image):
        return value
    if hasattr(value, "__array_interface__"):
        return Image.from_numpy(value)
    raise TypeError(f"expected flux_engine.Image or a numpy array, got {type(value).__name__}")


def view(image, keep):
    """A ``FluxImageView`` over ``image`` (RGB8/RGBA8); the buffer is appended to ``keep``,
    which the caller holds until the submit call returns (the library copies the pixels)."""
    image = as_image(image)
    if image.format not in (PixelFormat.RGB8, PixelFormat.RGBA8):
        raise ValueError(f"input images must be RGB8 or RGBA8, not {image.format.name}")
    row = image.width * image.format.bytes_per_pixel
    if len(image.data) < row * image.height:
        raise ValueError(
            f"{image.width}x{image.height} {image.format.name} needs {row * image.height} bytes,"
            f" got {len(image.data)}"
        )
    buf = (ctypes.c_uint8 * len(image.data)).from_buffer_copy(image.data)
    keep.append(buf)
    return _native.ImageView(
        image.width, image.height, row, image.format, ctypes.cast(buf, _native.c_u8_p)
    )
