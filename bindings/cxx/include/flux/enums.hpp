// Generated from include/flux_engine.h by ffi/tests/bindings/: do not edit.
// `FLUX_BLESS_HEADER=1 cargo test -p flux-ffi --test bindings` rewrites it.
//
// The C ABI's enums as `enum class`es whose values are the C constants, the job
// priorities, and the names of the result codes. Included by flux/engine.hpp.

#pragma once

#include <cstdint>

#include "flux_engine.h"

namespace flux {

/// Device an engine computes on.
enum class Device : int32_t {
  /// The CPU.
  Cpu = FLUX_DEVICE_CPU,
  /// CUDA device `device_index` (needs a library built with the `cuda` feature).
  Cuda = FLUX_DEVICE_CUDA,
};

/// Weight dtype in memory.
enum class Dtype : int32_t {
  /// f32 on the CPU, bf16 on CUDA.
  Default = FLUX_DTYPE_DEFAULT,
  /// 32-bit floats.
  F32 = FLUX_DTYPE_F32,
  /// bfloat16.
  Bf16 = FLUX_DTYPE_BF16,
  /// IEEE half floats.
  F16 = FLUX_DTYPE_F16,
};

/// Pixel layout of an image. Alpha is ignored on input and opaque on output; float values are
/// the 8-bit ones / 255 (sRGB-encoded, as the 8-bit formats), native-endian.
enum class PixelFormat : int32_t {
  /// 3 bytes per pixel.
  Rgb8 = FLUX_PIXEL_FORMAT_RGB8,
  /// 4 bytes per pixel (Unity's RGBA32).
  Rgba8 = FLUX_PIXEL_FORMAT_RGBA8,
  /// 16 bytes per pixel, floats in [0, 1] (Unity's RGBAFloat).
  Rgba32F = FLUX_PIXEL_FORMAT_RGBA32F,
  /// 8 bytes per pixel, half floats in [0, 1] (Unity's RGBAHalf).
  Rgba16F = FLUX_PIXEL_FORMAT_RGBA16F,
  /// 4 bytes per pixel, blue first (Unity's BGRA32, Unreal, D3D swap chains).
  Bgra8 = FLUX_PIXEL_FORMAT_BGRA8,
  /// 1 byte per pixel, read as grey (Fill masks, depth and edge maps); a result written into
  /// it is its luma (BT.601). Host images only.
  R8 = FLUX_PIXEL_FORMAT_R8,
};

/// States of a job; the last three are terminal and each job reaches exactly one.
enum class JobState : int32_t {
  /// Waiting in the engine's queue.
  Queued = FLUX_JOB_STATE_QUEUED,
  /// Running on the engine's worker thread.
  Running = FLUX_JOB_STATE_RUNNING,
  /// Finished with a result.
  Succeeded = FLUX_JOB_STATE_SUCCEEDED,
  /// Finished with an error (`flux_job_status` gives it).
  Failed = FLUX_JOB_STATE_FAILED,
  /// Stopped by a cancel (or by releasing the job or destroying the engine).
  Cancelled = FLUX_JOB_STATE_CANCELLED,
};

/// What `flux_job_cancel` did.
enum class CancelOutcome : int32_t {
  /// The job was queued and will never start.
  Dequeued = FLUX_CANCEL_OUTCOME_DEQUEUED,
  /// The job is running and stops before its next step (or before decoding).
  Requested = FLUX_CANCEL_OUTCOME_REQUESTED,
  /// The job had already finished; nothing changed.
  AlreadyFinished = FLUX_CANCEL_OUTCOME_ALREADY_FINISHED,
};

/// Kinds of events.
enum class EventType : int32_t {
  /// A job was submitted.
  Queued = FLUX_EVENT_TYPE_QUEUED,
  /// A job started running.
  Started = FLUX_EVENT_TYPE_STARTED,
  /// `step` of `total` done; `elapsed_ms`, `eta_ms`.
  Progress = FLUX_EVENT_TYPE_PROGRESS,
  /// `preview_rgb` (RGB8, `preview_width` × `preview_height`, tightly packed).
  Preview = FLUX_EVENT_TYPE_PREVIEW,
  /// The job succeeded; image jobs fill the stage timings.
  Finished = FLUX_EVENT_TYPE_FINISHED,
  /// The job failed; `message` says why.
  Failed = FLUX_EVENT_TYPE_FAILED,
  /// The job was cancelled.
  Cancelled = FLUX_EVENT_TYPE_CANCELLED,
  /// A log line in `message` with `log_level`.
  Log = FLUX_EVENT_TYPE_LOG,
  /// Where the model lives changed (loaded, moved to another plan by the budget, or unloaded
  /// because no plan fits); `message` says why. `flux_engine_get_residency` gives the figures.
  Residency = FLUX_EVENT_TYPE_RESIDENCY,
};

/// Log levels (as in the `log` crate).
enum class LogLevel : int32_t {
  /// No logging.
  Off = FLUX_LOG_LEVEL_OFF,
  /// Errors only.
  Error = FLUX_LOG_LEVEL_ERROR,
  /// Warnings and above.
  Warn = FLUX_LOG_LEVEL_WARN,
  /// Information and above.
  Info = FLUX_LOG_LEVEL_INFO,
  /// Debug output and above.
  Debug = FLUX_LOG_LEVEL_DEBUG,
  /// Everything.
  Trace = FLUX_LOG_LEVEL_TRACE,
};

/// Whether a model is Kontext-trained (editing follows reference images only then).
enum class Kontext : int32_t {
  /// From the file name or `model_index.json`.
  Detect = FLUX_KONTEXT_DETECT,
  /// Not Kontext-trained.
  No = FLUX_KONTEXT_NO,
  /// Kontext-trained.
  Yes = FLUX_KONTEXT_YES,
};

/// What kind of handle a `FluxExternalMemory` carries.
enum class ExternalMemoryType : int32_t {
  /// A POSIX fd from `vkGetMemoryFdKHR` (`VK_EXTERNAL_MEMORY_HANDLE_TYPE_OPAQUE_FD_BIT`).
  OpaqueFd = FLUX_EXTERNAL_MEMORY_TYPE_OPAQUE_FD,
  /// A Win32 NT handle from `vkGetMemoryWin32HandleKHR` (`..._OPAQUE_WIN32_BIT`).
  OpaqueWin32 = FLUX_EXTERNAL_MEMORY_TYPE_OPAQUE_WIN32,
  /// A D3D12 committed resource's handle from `ID3D12Device::CreateSharedHandle`.
  D3D12Resource = FLUX_EXTERNAL_MEMORY_TYPE_D3D12_RESOURCE,
};

/// What kind of semaphore a `FluxSemaphore` is. The engine waits for it before reading an image
/// and signals it after writing one.
enum class SemaphoreType : int32_t {
  /// A Vulkan binary semaphore's fd (`VK_EXTERNAL_SEMAPHORE_HANDLE_TYPE_OPAQUE_FD_BIT`).
  OpaqueFd = FLUX_SEMAPHORE_TYPE_OPAQUE_FD,
  /// A Vulkan binary semaphore's Win32 handle (`..._OPAQUE_WIN32_BIT`).
  OpaqueWin32 = FLUX_SEMAPHORE_TYPE_OPAQUE_WIN32,
  /// A Vulkan timeline semaphore's fd: waited for and signalled to the values given.
  TimelineFd = FLUX_SEMAPHORE_TYPE_TIMELINE_FD,
  /// A Vulkan timeline semaphore's Win32 handle: waited for and signalled to the values given.
  TimelineWin32 = FLUX_SEMAPHORE_TYPE_TIMELINE_WIN32,
  /// A D3D12 fence's shared handle: waited for and signalled to the values given.
  D3D12Fence = FLUX_SEMAPHORE_TYPE_D3D12_FENCE,
};

/// Where the text encoders live.
enum class TextPlacement : int32_t {
  /// On the compute device, kept between jobs.
  Resident = FLUX_TEXT_PLACEMENT_RESIDENT,
  /// Loaded to encode a new prompt, released right after (prompt embeddings stay cached).
  Released = FLUX_TEXT_PLACEMENT_RELEASED,
  /// On the CPU while the transformer computes on the GPU (T5 runs once per prompt).
  Host = FLUX_TEXT_PLACEMENT_HOST,
};

/// Job priorities: higher runs first, equal ones in submission order.
namespace priority {
/// For jobs a user is waiting on. Job priorities: higher runs first, equal ones in submission
/// order.
constexpr int32_t interactive = FLUX_PRIORITY_INTERACTIVE;
/// The default priority.
constexpr int32_t normal = FLUX_PRIORITY_NORMAL;
/// For background work: runs after the others.
constexpr int32_t batch = FLUX_PRIORITY_BATCH;
}  // namespace priority

/// The constant's name of a result code ("FLUX_RESULT_TIMEOUT").
inline const char *result_name(FluxResult result) noexcept {
  switch (result) {
    case FLUX_RESULT_OK: return "FLUX_RESULT_OK";
    case FLUX_RESULT_INVALID_ARGUMENT: return "FLUX_RESULT_INVALID_ARGUMENT";
    case FLUX_RESULT_NULL_POINTER: return "FLUX_RESULT_NULL_POINTER";
    case FLUX_RESULT_INVALID_UTF8: return "FLUX_RESULT_INVALID_UTF8";
    case FLUX_RESULT_BAD_STRUCT_SIZE: return "FLUX_RESULT_BAD_STRUCT_SIZE";
    case FLUX_RESULT_ABI_MISMATCH: return "FLUX_RESULT_ABI_MISMATCH";
    case FLUX_RESULT_INVALID_HANDLE: return "FLUX_RESULT_INVALID_HANDLE";
    case FLUX_RESULT_UNKNOWN_JOB: return "FLUX_RESULT_UNKNOWN_JOB";
    case FLUX_RESULT_NOT_READY: return "FLUX_RESULT_NOT_READY";
    case FLUX_RESULT_BUFFER_TOO_SMALL: return "FLUX_RESULT_BUFFER_TOO_SMALL";
    case FLUX_RESULT_IO: return "FLUX_RESULT_IO";
    case FLUX_RESULT_CORRUPT_FILE: return "FLUX_RESULT_CORRUPT_FILE";
    case FLUX_RESULT_MISSING_TENSOR: return "FLUX_RESULT_MISSING_TENSOR";
    case FLUX_RESULT_BAD_TENSOR: return "FLUX_RESULT_BAD_TENSOR";
    case FLUX_RESULT_UNKNOWN_LAYOUT: return "FLUX_RESULT_UNKNOWN_LAYOUT";
    case FLUX_RESULT_TOKENIZER: return "FLUX_RESULT_TOKENIZER";
    case FLUX_RESULT_CANCELLED: return "FLUX_RESULT_CANCELLED";
    case FLUX_RESULT_WRONG_THREAD: return "FLUX_RESULT_WRONG_THREAD";
    case FLUX_RESULT_TIMEOUT: return "FLUX_RESULT_TIMEOUT";
    case FLUX_RESULT_NO_EVENT: return "FLUX_RESULT_NO_EVENT";
    case FLUX_RESULT_JOB_FAILED: return "FLUX_RESULT_JOB_FAILED";
    case FLUX_RESULT_COMPUTE: return "FLUX_RESULT_COMPUTE";
    case FLUX_RESULT_INTERNAL: return "FLUX_RESULT_INTERNAL";
    case FLUX_RESULT_UNSUPPORTED: return "FLUX_RESULT_UNSUPPORTED";
  }
  return "FLUX_RESULT_(unknown)";
}

}  // namespace flux
