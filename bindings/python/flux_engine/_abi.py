"""The C ABI's enums, constants and functions.

Generated from include/flux_engine.h by ffi/tests/bindings/: do not edit.
`FLUX_BLESS_HEADER=1 cargo test -p flux-ffi --test bindings` rewrites it.
"""

from enum import IntEnum

#: ABI version of this header. ``flux_engine_create`` refuses a library with another major version.
ABI_VERSION = 2

#: For jobs a user is waiting on. Job priorities: higher runs first, equal ones in submission
#: order.
PRIORITY_INTERACTIVE = 100

#: The default priority.
PRIORITY_NORMAL = 0

#: For background work: runs after the others.
PRIORITY_BATCH = -100

#: Unread events an engine without a callback keeps for ``flux_engine_poll_event``; beyond it the
#: oldest are dropped (job states stay exact: ``flux_job_status``).
EVENT_QUEUE_CAPACITY = 1024

#: The memory budget that follows the machine: the memory available when a model loads (on the
#: CPU, the available RAM within the process's cgroup and ``ulimit`` limits; on CUDA, the
#: device's free memory) less the reserve, plus what the engine already holds. A model that fits
#: no residency plan is refused with the bytes needed and available in the error.
MEMORY_BUDGET_AUTO = 2**64 - 1

#: The default reserve ``FLUX_MEMORY_BUDGET_AUTO`` leaves free: 512 MiB.
MEMORY_RESERVE_DEFAULT = 512 << 20


class Result(IntEnum):
    """``FluxResult``: Result code of every fallible call; ``flux_last_error_message()`` gives the sentence."""

    #: Success.
    OK = 0
    #: A value is out of range or inconsistent (size, steps, enum value, priority...).
    INVALID_ARGUMENT = 1
    #: A required pointer is NULL.
    NULL_POINTER = 2
    #: A string is not valid UTF-8.
    INVALID_UTF8 = 3
    #: A struct's ``struct_size`` is smaller than its first version or absurdly large.
    BAD_STRUCT_SIZE = 4
    #: The caller was compiled against an incompatible ``FLUX_ABI_VERSION``.
    ABI_MISMATCH = 5
    #: The engine handle is not live (never created, or destroyed).
    INVALID_HANDLE = 6
    #: No such job on this engine (never submitted, or released).
    UNKNOWN_JOB = 7
    #: The job has no result (yet): not finished, failed, cancelled or already taken.
    NOT_READY = 8
    #: The destination buffer is too small for the requested copy.
    BUFFER_TOO_SMALL = 9
    #: A file could not be read.
    IO = 10
    #: A weight file is corrupt or truncated.
    CORRUPT_FILE = 11
    #: A tensor is missing from the weight files.
    MISSING_TENSOR = 12
    #: A tensor has the wrong shape or dtype.
    BAD_TENSOR = 13
    #: The model folder / key layout is not recognised.
    UNKNOWN_LAYOUT = 14
    #: A tokenizer file is missing or invalid.
    TOKENIZER = 15
    #: The job was cancelled.
    CANCELLED = 16
    #: The call is not allowed on this thread (e.g. destroy or wait inside the event callback).
    WRONG_THREAD = 17
    #: ``flux_job_wait`` timed out (the job goes on), or a GPU image's semaphore was not signalled
    #: in time.
    TIMEOUT = 18
    #: ``flux_engine_poll_event`` found no event.
    NO_EVENT = 19
    #: A job failed; ``flux_last_error_message()`` says why.
    JOB_FAILED = 20
    #: A computation failed inside the engine.
    COMPUTE = 21
    #: An internal error (a caught panic); the engine stays usable.
    INTERNAL = 22
    #: This library or engine cannot do it (GPU memory without CUDA, or on a CPU engine).
    UNSUPPORTED = 23


class Device(IntEnum):
    """``FluxDevice``: Device an engine computes on."""

    #: The CPU.
    CPU = 0
    #: CUDA device ``device_index`` (needs a library built with the ``cuda`` feature).
    CUDA = 1


class DType(IntEnum):
    """``FluxDtype``: Weight dtype in memory."""

    #: f32 on the CPU, bf16 on CUDA.
    DEFAULT = 0
    #: 32-bit floats.
    F32 = 1
    #: bfloat16.
    BF16 = 2
    #: IEEE half floats.
    F16 = 3


class PixelFormat(IntEnum):
    """``FluxPixelFormat``: Pixel layout of an image. Alpha is ignored on input and opaque on output; float values are
    the 8-bit ones / 255 (sRGB-encoded, as the 8-bit formats), native-endian."""

    #: 3 bytes per pixel.
    RGB8 = 0
    #: 4 bytes per pixel (Unity's RGBA32).
    RGBA8 = 1
    #: 16 bytes per pixel, floats in [0, 1] (Unity's RGBAFloat).
    RGBA32F = 2
    #: 8 bytes per pixel, half floats in [0, 1] (Unity's RGBAHalf).
    RGBA16F = 3
    #: 4 bytes per pixel, blue first (Unity's BGRA32, Unreal, D3D swap chains).
    BGRA8 = 4
    #: 1 byte per pixel, read as grey (Fill masks, depth and edge maps); a result written into
    #: it is its luma (BT.601). Host images only.
    R8 = 5


class JobState(IntEnum):
    """``FluxJobState``: States of a job; the last three are terminal and each job reaches exactly one."""

    #: Waiting in the engine's queue.
    QUEUED = 0
    #: Running on the engine's worker thread.
    RUNNING = 1
    #: Finished with a result.
    SUCCEEDED = 2
    #: Finished with an error (``flux_job_status`` gives it).
    FAILED = 3
    #: Stopped by a cancel (or by releasing the job or destroying the engine).
    CANCELLED = 4


class CancelOutcome(IntEnum):
    """``FluxCancelOutcome``: What ``flux_job_cancel`` did."""

    #: The job was queued and will never start.
    DEQUEUED = 0
    #: The job is running and stops before its next step (or before decoding).
    REQUESTED = 1
    #: The job had already finished; nothing changed.
    ALREADY_FINISHED = 2


class EventType(IntEnum):
    """``FluxEventType``: Kinds of events."""

    #: A job was submitted.
    QUEUED = 0
    #: A job started running.
    STARTED = 1
    #: ``step`` of ``total`` done; ``elapsed_ms``, ``eta_ms``.
    PROGRESS = 2
    #: ``preview_rgb`` (RGB8, ``preview_width`` × ``preview_height``, tightly packed).
    PREVIEW = 3
    #: The job succeeded; image jobs fill the stage timings.
    FINISHED = 4
    #: The job failed; ``message`` says why.
    FAILED = 5
    #: The job was cancelled.
    CANCELLED = 6
    #: A log line in ``message`` with ``log_level``.
    LOG = 7
    #: Where the model lives changed (loaded, moved to another plan by the budget, or unloaded
    #: because no plan fits); ``message`` says why. ``flux_engine_get_residency`` gives the figures.
    RESIDENCY = 8


class LogLevel(IntEnum):
    """``FluxLogLevel``: Log levels (as in the ``log`` crate)."""

    #: No logging.
    OFF = 0
    #: Errors only.
    ERROR = 1
    #: Warnings and above.
    WARN = 2
    #: Information and above.
    INFO = 3
    #: Debug output and above.
    DEBUG = 4
    #: Everything.
    TRACE = 5


class Kontext(IntEnum):
    """``FluxKontext``: Whether a model is Kontext-trained (editing follows reference images only then)."""

    #: From the file name or ``model_index.json``.
    DETECT = 0
    #: Not Kontext-trained.
    NO = 1
    #: Kontext-trained.
    YES = 2


class ExternalMemoryType(IntEnum):
    """``FluxExternalMemoryType``: What kind of handle a ``FluxExternalMemory`` carries."""

    #: A POSIX fd from ``vkGetMemoryFdKHR`` (``VK_EXTERNAL_MEMORY_HANDLE_TYPE_OPAQUE_FD_BIT``).
    OPAQUE_FD = 0
    #: A Win32 NT handle from ``vkGetMemoryWin32HandleKHR`` (``..._OPAQUE_WIN32_BIT``).
    OPAQUE_WIN32 = 1
    #: A D3D12 committed resource's handle from ``ID3D12Device::CreateSharedHandle``.
    D3D12_RESOURCE = 2


class SemaphoreType(IntEnum):
    """``FluxSemaphoreType``: What kind of semaphore a ``FluxSemaphore`` is. The engine waits for it before reading an image
    and signals it after writing one."""

    #: A Vulkan binary semaphore's fd (``VK_EXTERNAL_SEMAPHORE_HANDLE_TYPE_OPAQUE_FD_BIT``).
    OPAQUE_FD = 0
    #: A Vulkan binary semaphore's Win32 handle (``..._OPAQUE_WIN32_BIT``).
    OPAQUE_WIN32 = 1
    #: A Vulkan timeline semaphore's fd: waited for and signalled to the values given.
    TIMELINE_FD = 2
    #: A Vulkan timeline semaphore's Win32 handle: waited for and signalled to the values given.
    TIMELINE_WIN32 = 3
    #: A D3D12 fence's shared handle: waited for and signalled to the values given.
    D3D12_FENCE = 4


class TextPlacement(IntEnum):
    """``FluxTextPlacement``: Where the text encoders live."""

    #: On the compute device, kept between jobs.
    RESIDENT = 0
    #: Loaded to encode a new prompt, released right after (prompt embeddings stay cached).
    RELEASED = 1
    #: On the CPU while the transformer computes on the GPU (T5 runs once per prompt).
    HOST = 2


#: The structs: name -> fields (name, type), spelt as in C; ``_native`` builds their
#: ctypes mirrors from them.
STRUCTS = {
    "FluxEvent": (
        ("struct_size", "uint32_t"),
        ("kind", "int32_t"),
        ("job", "FluxJob"),
        ("step", "uint32_t"),
        ("total", "uint32_t"),
        ("elapsed_ms", "double"),
        ("eta_ms", "double"),
        ("preview_width", "uint32_t"),
        ("preview_height", "uint32_t"),
        ("preview_rgb", "const uint8_t *"),
        ("message", "const char *"),
        ("log_level", "int32_t"),
        ("text_ms", "double"),
        ("denoise_ms", "double"),
        ("decode_ms", "double"),
        ("embedding_cached", "uint32_t"),
        ("reserved", "uint32_t"),
    ),
    "FluxEngineDesc": (
        ("struct_size", "uint32_t"),
        ("abi_version", "uint32_t"),
        ("device", "int32_t"),
        ("device_index", "uint32_t"),
        ("memory_budget", "uint64_t"),
        ("preview_every", "uint32_t"),
        ("embedding_cache", "uint32_t"),
        ("log_level", "int32_t"),
        ("callback", "FluxEventCallback"),
        ("user_data", "void *"),
        ("memory_reserve", "uint64_t"),
    ),
    "FluxResidencyPlan": (
        ("struct_size", "uint32_t"),
        ("text_placement", "int32_t"),
        ("stream_window", "uint32_t"),
        ("stream_from_files", "uint32_t"),
        ("resident_blocks", "uint32_t"),
        ("tiled_vae", "uint32_t"),
    ),
    "FluxResidency": (
        ("struct_size", "uint32_t"),
        ("budget", "uint64_t"),
        ("transformer", "uint64_t"),
        ("autoencoder", "uint64_t"),
        ("text_encoders", "uint64_t"),
        ("release_text_encoders", "uint32_t"),
        ("host", "uint64_t"),
        ("text_placement", "int32_t"),
        ("stream_window", "uint32_t"),
        ("stream_from_files", "uint32_t"),
        ("resident_blocks", "uint32_t"),
        ("tiled_vae", "uint32_t"),
        ("reserved", "uint32_t"),
    ),
    "FluxImageDesc": (
        ("struct_size", "uint32_t"),
        ("width", "uint32_t"),
        ("height", "uint32_t"),
        ("format", "int32_t"),
        ("row_pitch", "uint64_t"),
        ("bottom_up", "uint32_t"),
        ("reserved", "uint32_t"),
    ),
    "FluxExternalMemory": (
        ("struct_size", "uint32_t"),
        ("handle_type", "int32_t"),
        ("handle", "int64_t"),
        ("size", "uint64_t"),
        ("offset", "uint64_t"),
        ("device_uuid", "uint8_t[16]"),
        ("dedicated", "uint32_t"),
        ("reserved", "uint32_t"),
    ),
    "FluxSemaphore": (
        ("struct_size", "uint32_t"),
        ("handle_type", "int32_t"),
        ("handle", "int64_t"),
    ),
    "FluxJobStatus": (
        ("struct_size", "uint32_t"),
        ("state", "int32_t"),
        ("step", "uint32_t"),
        ("total", "uint32_t"),
        ("has_result", "uint32_t"),
    ),
    "FluxModelDesc": (
        ("struct_size", "uint32_t"),
        ("folder", "const char *"),
        ("transformer", "const char *"),
        ("ae", "const char *"),
        ("t5", "const char *"),
        ("clip", "const char *"),
        ("t5_tokenizer", "const char *"),
        ("clip_tokenizer", "const char *"),
        ("dtype", "int32_t"),
        ("kontext", "int32_t"),
        ("priority", "int32_t"),
        ("reserved", "uint32_t"),
    ),
}

#: The functions: name -> (return type, parameter types), spelt as in C; ``_native``
#: gives each its ctypes types.
FUNCTIONS = {
    "flux_version": ("const char *", ()),
    "flux_abi_version": ("uint32_t", ()),
    "flux_last_error_message": ("const char *", ()),
    "flux_engine_desc_defaults": ("void", ("struct FluxEngineDesc *", "uint32_t",)),
    "flux_engine_create": ("FluxResult", ("const struct FluxEngineDesc *", "struct FluxEngine **",)),
    "flux_engine_destroy": ("FluxResult", ("struct FluxEngine *",)),
    "flux_engine_poll_event": ("FluxResult", ("struct FluxEngine *", "struct FluxEvent *",)),
    "flux_engine_set_memory_budget": ("FluxResult", ("struct FluxEngine *", "uint64_t",)),
    "flux_engine_set_memory_reserve": ("FluxResult", ("struct FluxEngine *", "uint64_t",)),
    "flux_residency_plan_defaults": ("void", ("struct FluxResidencyPlan *", "uint32_t",)),
    "flux_engine_set_residency_plan": ("FluxResult", ("struct FluxEngine *", "const struct FluxResidencyPlan *",)),
    "flux_engine_get_residency": ("FluxResult", ("struct FluxEngine *", "struct FluxResidency *",)),
    "flux_image_desc_defaults": ("void", ("struct FluxImageDesc *", "uint32_t",)),
    "flux_external_memory_defaults": ("void", ("struct FluxExternalMemory *", "uint32_t",)),
    "flux_semaphore_defaults": ("void", ("struct FluxSemaphore *", "uint32_t",)),
    "flux_image_create_host": ("FluxResult", ("const struct FluxImageDesc *", "void *", "size_t", "struct FluxImage **",)),
    "flux_image_create_cuda": ("FluxResult", ("struct FluxEngine *", "const struct FluxImageDesc *", "uint64_t", "const struct FluxSemaphore *", "struct FluxImage **",)),
    "flux_image_import_memory": ("FluxResult", ("struct FluxEngine *", "const struct FluxImageDesc *", "const struct FluxExternalMemory *", "const struct FluxSemaphore *", "struct FluxImage **",)),
    "flux_image_destroy": ("FluxResult", ("struct FluxImage *",)),
    "flux_job_write_image": ("FluxResult", ("struct FluxEngine *", "FluxJob", "struct FluxImage *", "uint64_t",)),
    "flux_engine_device_uuid": ("FluxResult", ("struct FluxEngine *", "uint8_t *",)),
    "flux_job_cancel": ("FluxResult", ("struct FluxEngine *", "FluxJob", "int32_t *",)),
    "flux_job_status": ("FluxResult", ("struct FluxEngine *", "FluxJob", "struct FluxJobStatus *",)),
    "flux_job_wait": ("FluxResult", ("struct FluxEngine *", "FluxJob", "uint32_t", "int32_t *",)),
    "flux_job_error": ("FluxResult", ("struct FluxEngine *", "FluxJob",)),
    "flux_job_image_size": ("FluxResult", ("struct FluxEngine *", "FluxJob", "uint32_t *", "uint32_t *",)),
    "flux_job_save_image": ("FluxResult", ("struct FluxEngine *", "FluxJob", "const char *",)),
    "flux_job_release": ("FluxResult", ("struct FluxEngine *", "FluxJob",)),
    "flux_model_desc_defaults": ("void", ("struct FluxModelDesc *", "uint32_t",)),
    "flux_engine_load_model": ("FluxResult", ("struct FluxEngine *", "const struct FluxModelDesc *", "FluxJob *",)),
    "flux_engine_unload_model": ("FluxResult", ("struct FluxEngine *", "int32_t", "FluxJob *",)),
    "flux_request_create": ("FluxResult", ("struct FluxRequest **",)),
    "flux_request_destroy": ("FluxResult", ("struct FluxRequest *",)),
    "flux_request_set_prompt": ("FluxResult", ("struct FluxRequest *", "const char *",)),
    "flux_request_set_size": ("FluxResult", ("struct FluxRequest *", "uint32_t", "uint32_t",)),
    "flux_request_set_seed": ("FluxResult", ("struct FluxRequest *", "uint64_t",)),
    "flux_request_set_steps": ("FluxResult", ("struct FluxRequest *", "uint32_t",)),
    "flux_request_set_guidance": ("FluxResult", ("struct FluxRequest *", "float",)),
    "flux_request_set_t5_length": ("FluxResult", ("struct FluxRequest *", "uint32_t",)),
    "flux_request_set_priority": ("FluxResult", ("struct FluxRequest *", "int32_t",)),
    "flux_request_add_reference": ("FluxResult", ("struct FluxRequest *", "struct FluxImage *", "uint64_t",)),
    "flux_request_set_reference_snap": ("FluxResult", ("struct FluxRequest *", "bool",)),
    "flux_request_set_init_image": ("FluxResult", ("struct FluxRequest *", "struct FluxImage *", "uint64_t", "float",)),
    "flux_request_set_fill": ("FluxResult", ("struct FluxRequest *", "struct FluxImage *", "uint64_t", "struct FluxImage *",)),
    "flux_request_set_control_image": ("FluxResult", ("struct FluxRequest *", "struct FluxImage *", "uint64_t",)),
    "flux_request_add_redux_image": ("FluxResult", ("struct FluxRequest *", "struct FluxImage *", "uint64_t",)),
    "flux_request_set_negative_prompt": ("FluxResult", ("struct FluxRequest *", "const char *", "float",)),
    "flux_request_clear_images": ("FluxResult", ("struct FluxRequest *",)),
    "flux_request_add_lora": ("FluxResult", ("struct FluxRequest *", "const char *", "float",)),
    "flux_request_clear_loras": ("FluxResult", ("struct FluxRequest *",)),
    "flux_engine_submit": ("FluxResult", ("struct FluxEngine *", "const struct FluxRequest *", "FluxJob *",)),
}
