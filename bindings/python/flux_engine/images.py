"""Images crossing the boundary (``FluxImage``): pixels the engine reads (Kontext references,
init images) and writes (a job's result), in host memory or on the GPU."""

import ctypes
from dataclasses import dataclass

from . import _native
from .enums import ExternalMemoryType, PixelFormat, Result, SemaphoreType
from .closing import Closeable
from .errors import FluxError, check


@dataclass(frozen=True)
class Semaphore:
    """A Vulkan semaphore or D3D12 fence (``FluxSemaphore``) a GPU image is synchronised with:
    the engine waits for it before reading the image and signals it after writing it (timeline
    semaphores and fences to the values given). ``handle`` (an fd or a Win32 HANDLE) is used
    during the call only; close it when you like."""

    handle: int
    type: SemaphoreType = SemaphoreType.OPAQUE_FD

    def _native(self):
        s = _native.defaults(_native.Semaphore)
        s.handle_type, s.handle = SemaphoreType(self.type), self.handle
        return s


@dataclass(frozen=True)
class ExternalMemory:
    """Vulkan or D3D12 memory to import (``FluxExternalMemory``): its ``handle`` (an fd or a
    Win32 HANDLE, used during the call only), the allocation's ``size``, the 16-byte UUID of the
    device it lives on (``Engine.device_uuid()``), the bytes from its start to the first pixel
    and whether it is a dedicated allocation."""

    handle: int
    size: int
    device_uuid: bytes
    type: ExternalMemoryType = ExternalMemoryType.OPAQUE_FD
    offset: int = 0
    dedicated: bool = False

    def _native(self):
        m = _native.defaults(_native.ExternalMemory)
        m.handle_type, m.handle = ExternalMemoryType(self.type), self.handle
        m.size, m.offset, m.dedicated = self.size, self.offset, int(bool(self.dedicated))
        m.device_uuid[:] = bytes(self.device_uuid)  # ValueError unless 16 bytes
        return m


class Image(Closeable):
    """An image of the host's (``FluxImage``): an input of a ``Request`` (a Kontext reference,
    an init image) or the destination of a job's result (``Job.write_image``).

    ``Image(width, height, format, data)`` wraps host memory: ``data`` is any buffer
    (``bytearray``, numpy array, ``memoryview``...) holding ``height`` rows ``row_pitch`` bytes
    apart (default: tightly packed), the top row first, or with ``bottom_up`` the bottom row
    (OpenGL, Blender). A writable buffer is borrowed, not copied: the engine reads it when the
    image is added to a request and writes results into it. A read-only one (``bytes``) is
    copied, and ``None`` allocates zeroed memory. The library checks the layout and the
    buffer's size (``FluxError``: ``INVALID_ARGUMENT``, ``BUFFER_TOO_SMALL``).

    GPU images come from ``Image.from_cuda`` and ``Image.import_memory``. ``close()`` (or
    leaving a ``with`` block, or garbage collection) frees the handle; host memory stays this
    object's.
    """

    def __init__(self, width, height, format=PixelFormat.RGBA8, data=None, *, row_pitch=None,
                 bottom_up=False):
        self._layout(width, height, format, row_pitch, bottom_up)
        if data is None:
            data = bytearray(self.row_pitch * height)
        view = memoryview(data)
        if view.readonly or not view.c_contiguous:
            data = bytearray(view.tobytes())
        self._data = memoryview(data).cast("B")
        buf = (ctypes.c_char * self._data.nbytes).from_buffer(self._data)
        self._create(lambda desc, out: _native.lib().flux_image_create_host(
            desc, buf, len(buf), out))
        self._buf = buf  # the library holds its address until close()

    def _layout(self, width, height, format, row_pitch, bottom_up):
        self.width, self.height, self.format = width, height, PixelFormat(format)
        self.row_pitch = width * self.format.bytes_per_pixel if row_pitch is None else row_pitch
        self.bottom_up = bool(bottom_up)
        self._ptr = self._data = self._buf = None

    def _create(self, create):
        desc = _native.defaults(_native.ImageDesc)
        desc.width, desc.height, desc.format = self.width, self.height, self.format
        desc.row_pitch, desc.bottom_up = self.row_pitch, int(self.bottom_up)
        out = ctypes.c_void_p()
        check(create(ctypes.byref(desc), ctypes.byref(out)))
        self._ptr = out.value

    @classmethod
    def _gpu(cls, width, height, format, row_pitch, create):
        image = cls.__new__(cls)
        image._layout(width, height, format, row_pitch, False)
        image._create(create)
        return image

    @classmethod
    def from_cuda(cls, engine, width, height, device_pointer, format=PixelFormat.RGBA8, *,
                  row_pitch=None, semaphore=None):
        """Wraps CUDA memory of ``engine``'s device (``device_pointer``, a ``CUdeviceptr``: the
        first pixel; RGBA8 or RGBA16F, top row first). ``semaphore`` (a ``Semaphore``) is
        waited for before reads and signalled after writes. ``UNSUPPORTED`` on CPU engines."""
        sem = None if semaphore is None else ctypes.byref(semaphore._native())
        return cls._gpu(width, height, format, row_pitch, lambda desc, out: (
            _native.lib().flux_image_create_cuda(engine._handle(), desc, device_pointer, sem, out)
        ))

    @classmethod
    def import_memory(cls, engine, width, height, memory, format=PixelFormat.RGBA8, *,
                      row_pitch=None, semaphore=None):
        """Imports Vulkan or D3D12 memory (an ``ExternalMemory``) into ``engine``'s CUDA
        context, holding pixels as ``from_cuda``'s. Import once, use many times."""
        mem = memory._native()
        sem = None if semaphore is None else ctypes.byref(semaphore._native())
        return cls._gpu(width, height, format, row_pitch, lambda desc, out: (
            _native.lib().flux_image_import_memory(
                engine._handle(), desc, ctypes.byref(mem), sem, out)
        ))

    @classmethod
    def from_numpy(cls, array, format=None, *, bottom_up=False):
        """An image over a ``(height, width, channels)`` array, borrowed when it is writable
        and C-contiguous (else copied). The format follows the array: uint8 with 3 channels is
        RGB8, with 4 RGBA8 (or ``format=PixelFormat.BGRA8``), with 1 R8 (a 2-D uint8 array is
        taken as one channel), float32 RGBA32F, float16 RGBA16F."""
        import numpy as np

        array = np.ascontiguousarray(array)
        if array.ndim == 2 and array.dtype.name == "uint8":
            array = array[:, :, None]
        if format is None:
            formats = {("uint8", 1): PixelFormat.R8, ("uint8", 3): PixelFormat.RGB8,
                       ("uint8", 4): PixelFormat.RGBA8,
                       ("float32", 4): PixelFormat.RGBA32F, ("float16", 4): PixelFormat.RGBA16F}
            format = formats.get((array.dtype.name, array.shape[-1] if array.ndim else 0))
        if format is None or array.ndim != 3 or (array.dtype.name, array.shape[2]) != (
            PixelFormat(format).numpy_dtype, PixelFormat(format).channels
        ):
            raise ValueError(
                f"a {array.dtype} array of shape {array.shape} holds no "
                f"{getattr(format, 'name', 'supported')} image (height, width, channels)"
            )
        height, width = array.shape[:2]
        return cls(width, height, format, array, bottom_up=bottom_up)

    @property
    def is_gpu(self):
        """Whether the pixels are in GPU memory (no host buffer)."""
        return self._data is None

    @property
    def data(self):
        """The host buffer's bytes (a ``memoryview``, no copy; row padding included)."""
        if self._data is None:
            raise ValueError("a GPU image has no pixels in host memory")
        return self._data

    def to_numpy(self):
        """A ``(height, width, channels)`` numpy view of the pixels (no copy; uint8, float32 or
        float16 as the format), rows as they lie in memory: bottom row first when
        ``bottom_up``."""
        import numpy as np

        dtype = np.dtype(self.format.numpy_dtype)
        c = self.format.channels
        return np.ndarray((self.height, self.width, c), dtype, buffer=self.data,
                          strides=(self.row_pitch, c * dtype.itemsize, dtype.itemsize))

    def _handle(self):
        if not self._ptr:
            raise FluxError(Result.INVALID_HANDLE, "the image is closed")
        return self._ptr

    def close(self):
        """Frees the image handle. Idempotent."""
        if self._ptr:
            ptr, self._ptr, self._buf = self._ptr, None, None
            check(_native.lib().flux_image_destroy(ptr))

    def __repr__(self):
        where = "gpu" if self.is_gpu else "host"
        flip = ", bottom_up" if self.bottom_up else ""
        return f"<flux_engine.Image {self.width}x{self.height} {self.format.name} {where}{flip}>"


def as_image(value):
    """``value`` as an ``Image`` and whether it was made here (to close it after use): an
    ``Image`` as it is, a numpy array through ``Image.from_numpy``."""
    if isinstance(value, Image):
        return value, False
    if hasattr(value, "__array_interface__"):
        return Image.from_numpy(value), True
    raise TypeError(f"expected flux_engine.Image or a numpy array, got {type(value).__name__}")
