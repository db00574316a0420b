"""The C ABI's enums as ``IntEnum``s (values as in ``flux_engine.h``)."""

from enum import IntEnum


class Result(IntEnum):
    """``FluxResult``: the code of every fallible call."""

    OK = 0
    INVALID_ARGUMENT = 1
    NULL_POINTER = 2
    INVALID_UTF8 = 3
    BAD_STRUCT_SIZE = 4
    ABI_MISMATCH = 5
    INVALID_HANDLE = 6
    UNKNOWN_JOB = 7
    NOT_READY = 8
    BUFFER_TOO_SMALL = 9
    IO = 10
    CORRUPT_FILE = 11
    MISSING_TENSOR = 12
    BAD_TENSOR = 13
    UNKNOWN_LAYOUT = 14
    TOKENIZER = 15
    CANCELLED = 16
    WRONG_THREAD = 17
    TIMEOUT = 18
    NO_EVENT = 19
    JOB_FAILED = 20
    COMPUTE = 21
    INTERNAL = 22
    UNSUPPORTED = 23


class Device(IntEnum):
    """Where an engine computes."""

    CPU = 0
    CUDA = 1


class DType(IntEnum):
    """Weight dtype in memory (DEFAULT: f32 on the CPU, bf16 on CUDA)."""

    DEFAULT = 0
    F32 = 1
    BF16 = 2
    F16 = 3


class PixelFormat(IntEnum):
    """Pixel layout of an image. Alpha is ignored on input and opaque on output; float values
    are the 8-bit ones / 255 (sRGB-encoded). Host images take every format, GPU images RGBA8
    and RGBA16F."""

    RGB8 = 0
    RGBA8 = 1
    #: Native-endian floats in [0, 1].
    RGBA32F = 2
    #: Native-endian half floats in [0, 1].
    RGBA16F = 3
    #: Blue first (Unreal, D3D swap chains).
    BGRA8 = 4
    #: One channel, read as grey (Fill masks, depth and edge maps); results get the luma.
    R8 = 5

    @property
    def bytes_per_pixel(self):
        return (3, 4, 16, 8, 4, 1)[self]

    @property
    def numpy_dtype(self):
        """The numpy dtype name of one channel (``uint8``, ``float32`` or ``float16``)."""
        return {PixelFormat.RGBA32F: "float32", PixelFormat.RGBA16F: "float16"}.get(self, "uint8")

    @property
    def channels(self):
        return {PixelFormat.RGB8: 3, PixelFormat.R8: 1}.get(self, 4)


class Kontext(IntEnum):
    """Whether a model is Kontext-trained (editing follows reference images only then)."""

    #: From the file name or ``model_index.json``.
    DETECT = 0
    NO = 1
    YES = 2


class ExternalMemoryType(IntEnum):
    """What kind of handle an ``ExternalMemory`` carries."""

    #: A POSIX fd from ``vkGetMemoryFdKHR``.
    OPAQUE_FD = 0
    #: A Win32 NT handle from ``vkGetMemoryWin32HandleKHR``.
    OPAQUE_WIN32 = 1
    #: A D3D12 committed resource's handle from ``ID3D12Device::CreateSharedHandle``.
    D3D12_RESOURCE = 2


class SemaphoreType(IntEnum):
    """What kind of semaphore a ``Semaphore`` is: waited for before an image is read, signalled
    after it is written (the timeline kinds to the values given)."""

    OPAQUE_FD = 0
    OPAQUE_WIN32 = 1
    TIMELINE_FD = 2
    TIMELINE_WIN32 = 3
    D3D12_FENCE = 4


class JobState(IntEnum):
    """A job's state; the last three are terminal."""

    QUEUED = 0
    RUNNING = 1
    SUCCEEDED = 2
    FAILED = 3
    CANCELLED = 4

    @property
    def finished(self):
        return self >= JobState.SUCCEEDED


class CancelOutcome(IntEnum):
    """What a cancel did."""

    DEQUEUED = 0
    REQUESTED = 1
    ALREADY_FINISHED = 2


class EventType(IntEnum):
    """Kinds of events."""

    QUEUED = 0
    STARTED = 1
    PROGRESS = 2
    PREVIEW = 3
    FINISHED = 4
    FAILED = 5
    CANCELLED = 6
    LOG = 7
    #: Where the model lives changed; ``message`` says why, ``Engine.residency()`` the figures.
    RESIDENCY = 8


class TextPlacement(IntEnum):
    """Where the text encoders live."""

    #: On the compute device, kept between jobs.
    RESIDENT = 0
    #: Loaded to encode a new prompt, released right after.
    RELEASED = 1
    #: On the CPU while the transformer computes on the GPU.
    HOST = 2


class LogLevel(IntEnum):
    """Log levels (as in Rust's ``log`` crate)."""

    OFF = 0
    ERROR = 1
    WARN = 2
    INFO = 3
    DEBUG = 4
    TRACE = 5
