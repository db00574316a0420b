"""Pixels between the engine (RGBA8/RGB8, rows top to bottom) and Blender images (float RGBA,
rows bottom to top). Main thread only."""

import numpy as np


def _linear_to_srgb(x):
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * np.power(np.maximum(x, 0.0), 1 / 2.4) - 0.055)


def read_rgba8(image):
    """``image`` as a ``(height, width, 4)`` uint8 array, top row first, sRGB-encoded (float
    images are converted from linear)."""
    width, height = image.size
    buf = np.empty(width * height * 4, dtype=np.float32)
    image.pixels.foreach_get(buf)
    rgba = buf.reshape(height, width, 4)[::-1]
    if image.is_float:
        rgba = rgba.copy()
        rgba[..., :3] = _linear_to_srgb(rgba[..., :3])
    return np.ascontiguousarray((np.clip(rgba, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))


def write(image, pixels, width, height):
    """Writes ``pixels`` (``bytes`` or array, RGB8 or RGBA8 by length, top row first) into
    ``image``, resizing it to ``width`` × ``height`` if needed."""
    arr = np.frombuffer(bytes(pixels), dtype=np.uint8).reshape(height, width, -1)
    if tuple(image.size) != (width, height):
        image.scale(width, height)
    rgba = np.empty((height, width, 4), dtype=np.float32)
    rgba[..., :3] = arr[..., :3]
    rgba[..., 3] = arr[..., 3] if arr.shape[2] == 4 else 255
    rgba = rgba[::-1] / 255.0
    image.pixels.foreach_set(rgba.ravel())
    image.update()


def upscale_nearest(rgb, src_w, src_h, width, height):
    """Nearest-neighbour resize of RGB8 bytes (for the live preview, which is smaller)."""
    arr = np.frombuffer(rgb, dtype=np.uint8).reshape(src_h, src_w, 3)
    rows = np.arange(height) * src_h // height
    cols = np.arange(width) * src_w // width
    return arr[rows][:, cols]
