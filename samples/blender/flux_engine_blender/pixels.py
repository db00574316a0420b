"""Pixels between Blender images and the engine. Blender keeps float RGBA, rows bottom to top:
that is the engine's RGBA32F with ``bottom_up``, so results and edit sources cross without a
flip or a conversion here (except linear float images, made sRGB first). Main thread only."""

import numpy as np


def _linear_to_srgb(x):
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * np.power(np.maximum(x, 0.0), 1 / 2.4) - 0.055)


def read(image):
    """``image``'s pixels as a ``(height, width, 4)`` float32 array, bottom row first,
    sRGB-encoded in [0, 1] (float images are converted from linear): an RGBA32F bottom-up image
    for the engine."""
    width, height = image.size
    buf = np.empty(width * height * 4, dtype=np.float32)
    image.pixels.foreach_get(buf)
    rgba = buf.reshape(height, width, 4)
    if image.is_float:
        rgba[..., :3] = _linear_to_srgb(rgba[..., :3])
    return rgba


def write(image, rgba):
    """Writes a ``(height, width, 4)`` float32 array, bottom row first (a job's result as
    ``Job.image(RGBA32F, bottom_up=True)`` gives it) into ``image``, resizing it if needed."""
    height, width = rgba.shape[:2]
    if tuple(image.size) != (width, height):
        image.scale(width, height)
    image.pixels.foreach_set(np.ascontiguousarray(rgba, dtype=np.float32).ravel())
    image.update()


def preview(rgb, src_w, src_h, width, height):
    """An RGB8 preview (tightly packed, top row first) resized nearest-neighbour to ``width`` ×
    ``height`` as ``write`` takes it (the preview is smaller than the result)."""
    arr = np.frombuffer(rgb, dtype=np.uint8).reshape(src_h, src_w, 3)
    rows = (np.arange(height) * src_h // height)[::-1]
    cols = np.arange(width) * src_w // width
    out = np.ones((height, width, 4), dtype=np.float32)
    out[..., :3] = arr[rows][:, cols] / np.float32(255)
    return out
