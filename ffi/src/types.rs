//! The C-visible types. Enum-typed inputs travel as `int32_t` and are validated; the enums
//! document their values.

use std::ffi::{c_char, c_void};

/// ABI version of this header. `flux_engine_create` refuses a library with another major version.
pub const FLUX_ABI_VERSION: u32 = 1;

/// Result code of every fallible call; `flux_last_error_message()` gives the sentence.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FluxResult {
    Ok = 0,
    /// A value is out of range or inconsistent (size, steps, enum value, priority...).
    InvalidArgument = 1,
    /// A required pointer is NULL.
    NullPointer = 2,
    /// A string is not valid UTF-8.
    InvalidUtf8 = 3,
    /// A struct's `struct_size` is smaller than its first version or absurdly large.
    BadStructSize = 4,
    /// The caller was compiled against an incompatible `FLUX_ABI_VERSION`.
    AbiMismatch = 5,
    /// The engine handle is not live (never created, or destroyed).
    InvalidHandle = 6,
    /// No such job on this engine (never submitted, or released).
    UnknownJob = 7,
    /// The job has no result (yet): not finished, failed, cancelled or already taken.
    NotReady = 8,
    /// The destination buffer is too small for the requested copy.
    BufferTooSmall = 9,
    /// A file could not be read.
    Io = 10,
    /// A weight file is corrupt or truncated.
    CorruptFile = 11,
    /// A tensor is missing from the weight files.
    MissingTensor = 12,
    /// A tensor has the wrong shape or dtype.
    BadTensor = 13,
    /// The model folder / key layout is not recognised.
    UnknownLayout = 14,
    /// A tokenizer file is missing or invalid.
    Tokenizer = 15,
    /// The job was cancelled.
    Cancelled = 16,
    /// The call is not allowed on this thread (e.g. destroy or wait inside the event callback).
    WrongThread = 17,
    /// `flux_job_wait` timed out (the job goes on), or a GPU image's semaphore was not signalled
    /// in time.
    Timeout = 18,
    /// `flux_engine_poll_event` found no event.
    NoEvent = 19,
    /// A job failed; `flux_last_error_message()` says why.
    JobFailed = 20,
    /// A computation failed inside the engine.
    Compute = 21,
    /// An internal error (a caught panic); the engine stays usable.
    Internal = 22,
    /// This library or engine cannot do it (GPU memory without CUDA, or on a CPU engine).
    Unsupported = 23,
}

/// Device an engine computes on.
#[repr(i32)]
pub enum FluxDevice {
    Cpu = 0,
    /// CUDA device `device_index` (needs a library built with the `cuda` feature).
    Cuda = 1,
}

/// Weight dtype in memory.
#[repr(i32)]
pub enum FluxDtype {
    /// f32 on the CPU, bf16 on CUDA.
    Default = 0,
    F32 = 1,
    Bf16 = 2,
    F16 = 3,
}

/// Pixel layout of an image buffer.
#[repr(i32)]
pub enum FluxPixelFormat {
    /// 3 bytes per pixel.
    Rgb8 = 0,
    /// 4 bytes per pixel; alpha is ignored on input and 255 on output.
    Rgba8 = 1,
    /// 16 bytes per pixel, floats in [0, 1]; output only.
    Rgba32f = 2,
    /// 8 bytes per pixel, half floats in [0, 1] (the RGBA8 values / 255); GPU images only.
    Rgba16f = 3,
}

/// States of a job; the last three are terminal and each job reaches exactly one.
#[repr(i32)]
pub enum FluxJobState {
    Queued = 0,
    Running = 1,
    Succeeded = 2,
    Failed = 3,
    Cancelled = 4,
}

/// What `flux_job_cancel` did.
#[repr(i32)]
pub enum FluxCancelOutcome {
    /// The job was queued and will never start.
    Dequeued = 0,
    /// The job is running and stops before its next step (or before decoding).
    Requested = 1,
    /// The job had already finished; nothing changed.
    AlreadyFinished = 2,
}

/// Kinds of events.
#[repr(i32)]
pub enum FluxEventType {
    Queued = 0,
    Started = 1,
    /// `step` of `total` done; `elapsed_ms`, `eta_ms`.
    Progress = 2,
    /// `preview_rgb` (RGB8, `preview_width` × `preview_height`, tightly packed).
    Preview = 3,
    /// The job succeeded; image jobs fill the stage timings.
    Finished = 4,
    /// The job failed; `message` says why.
    Failed = 5,
    Cancelled = 6,
    /// A log line in `message` with `log_level`.
    Log = 7,
    /// Where the model lives changed (loaded, moved to another plan by the budget, or unloaded
    /// because no plan fits); `message` says why. `flux_engine_get_residency` gives the figures.
    Residency = 8,
}

/// Log levels (as in the `log` crate).
#[repr(i32)]
pub enum FluxLogLevel {
    Off = 0,
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
    Trace = 5,
}

/// Job priorities: higher runs first, equal ones in submission order.
pub const FLUX_PRIORITY_INTERACTIVE: i32 = 100;
pub const FLUX_PRIORITY_NORMAL: i32 = 0;
pub const FLUX_PRIORITY_BATCH: i32 = -100;

/// Unread events an engine without a callback keeps for `flux_engine_poll_event`; beyond it the
/// oldest are dropped (job states stay exact: `flux_job_status`).
pub const FLUX_EVENT_QUEUE_CAPACITY: u32 = 1024;

/// The memory budget that follows the machine: the memory available when a model loads (on the
/// CPU, the available RAM within the process's cgroup and `ulimit` limits; on CUDA, the
/// device's free memory) less the reserve, plus what the engine already holds. A model that fits
/// no residency plan is refused with the bytes needed and available in the error.
pub const FLUX_MEMORY_BUDGET_AUTO: u64 = u64::MAX;

/// The default reserve `FLUX_MEMORY_BUDGET_AUTO` leaves free: 512 MiB.
pub const FLUX_MEMORY_RESERVE_DEFAULT: u64 = 512 << 20;
const _: () = assert!(FLUX_MEMORY_RESERVE_DEFAULT == flux_core::runtime::MEMORY_RESERVE_DEFAULT);
const _: () =
    assert!(FLUX_EVENT_QUEUE_CAPACITY as usize == flux_core::runtime::events::QUEUE_CAPACITY);

/// An engine (opaque). Create with `flux_engine_create`, free with `flux_engine_destroy`.
/// All functions taking an engine may be called from any thread, concurrently, except
/// `flux_engine_destroy`, which must not race other calls on the same engine.
pub struct FluxEngine {
    _private: [u8; 0],
}

/// A job handle: unique within its engine, never 0, never reused.
pub type FluxJob = u64;

/// Receives every event of an engine (which then queues none for `flux_engine_poll_event`).
/// Runs on the engine's worker thread for everything the worker does, and on the calling thread
/// inside submit calls (QUEUED) and `flux_job_cancel` (CANCELLED of a queued job). The event and its pointers are valid only during the call. From
/// the callback you may call any function except `flux_engine_destroy` and `flux_job_wait`
/// (both return `FLUX_RESULT_WRONG_THREAD` there); keep it short, it delays the job.
pub type FluxEventCallback =
    Option<unsafe extern "C" fn(event: *const FluxEvent, user_data: *mut c_void)>;

/// How to create an engine. Fill with `flux_engine_desc_init`, then change fields.
#[repr(C)]
pub struct FluxEngineDesc {
    /// `sizeof(FluxEngineDesc)` as the caller was compiled (set by the init function).
    pub struct_size: u32,
    /// `FLUX_ABI_VERSION` as the caller was compiled (set by the init function).
    pub abi_version: u32,
    /// A `FluxDevice`.
    pub device: i32,
    pub device_index: u32,
    /// Bytes of device memory the engine may keep (default `FLUX_MEMORY_BUDGET_AUTO`: the memory
    /// available when a model loads).
    pub memory_budget: u64,
    /// Emit a PREVIEW event every N steps (0: never; default 0).
    pub preview_every: u32,
    /// Prompt embeddings cached for reuse (default 16).
    pub embedding_cache: u32,
    /// Most verbose `FluxLogLevel` delivered as LOG events (default INFO).
    pub log_level: i32,
    /// Optional event callback and its user data (see `FluxEventCallback`). With a callback,
    /// events go only to it; without one, they queue for `flux_engine_poll_event`.
    pub callback: FluxEventCallback,
    pub user_data: *mut c_void,
    /// Bytes `FLUX_MEMORY_BUDGET_AUTO` leaves free for the host's renderer and the device's own
    /// needs (default `FLUX_MEMORY_RESERVE_DEFAULT`).
    pub memory_reserve: u64,
}

/// Which model to load: a `folder` (layout detected), or explicit paths (each a .safetensors
/// file, a shard index or a component folder). UTF-8, NUL-terminated; NULL = not given.
#[repr(C)]
pub struct FluxModelDesc {
    pub struct_size: u32,
    pub folder: *const c_char,
    pub transformer: *const c_char,
    pub ae: *const c_char,
    pub t5: *const c_char,
    pub clip: *const c_char,
    pub t5_tokenizer: *const c_char,
    pub clip_tokenizer: *const c_char,
    /// A `FluxDtype`.
    pub dtype: i32,
    /// 1: Kontext-trained, 0: not, -1 (default): detect from the file name / model_index.json.
    pub kontext: i32,
    /// Job priority.
    pub priority: i32,
    /// Reserved, 0, never reused: it fills what would be tail padding, so that a field added
    /// later always changes `sizeof` (and `struct_size` tells the versions apart).
    pub reserved: u32,
}

/// A text-to-image job. 0 / negative values mean "the variant's default".
#[repr(C)]
pub struct FluxTextToImageDesc {
    pub struct_size: u32,
    /// UTF-8, NUL-terminated; copied at submit.
    pub prompt: *const c_char,
    /// Output size, positive multiples of 16 (default 1024 × 1024).
    pub width: u32,
    pub height: u32,
    pub seed: u64,
    /// Steps (0: dev 28, schnell 4).
    pub steps: u32,
    /// Distilled guidance (negative: dev 3.5).
    pub guidance: f32,
    /// T5 tokens (0: dev 512, schnell 256).
    pub t5_len: u32,
    pub priority: i32,
}

/// A caller image: `height` rows of `stride` bytes, each starting with `width` pixels of
/// `format` (RGB8 or RGBA8). The pixels are copied at submit.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FluxImageView {
    pub width: u32,
    pub height: u32,
    pub stride: u32,
    /// A `FluxPixelFormat` (RGB8 or RGBA8).
    pub format: i32,
    pub data: *const u8,
}

/// A Kontext edit job.
#[repr(C)]
pub struct FluxEditDesc {
    pub struct_size: u32,
    pub prompt: *const c_char,
    /// `image_count` reference images from host memory; with the GPU references below, 1 to 4
    /// in all (host ones first); reference i gets position ids (i+1, row, col).
    pub images: *const FluxImageView,
    pub image_count: u32,
    /// 1 (default): snap references to the closest Kontext resolution; 0: keep their size.
    pub snap: u32,
    /// Output size (0: the first reference's snapped size).
    pub width: u32,
    pub height: u32,
    pub seed: u64,
    /// 0: 30.
    pub steps: u32,
    /// Negative: 2.5.
    pub guidance: f32,
    pub t5_len: u32,
    pub priority: i32,
    /// `gpu_image_count` references read from GPU images (`flux_gpu_image_create`, a CUDA engine)
    /// at submit: the engine waits on the GPU for each image's semaphore (timeline semaphores and
    /// fences until `gpu_wait_values[i]`; NULL: 0), copies the pixels (RGBA16F as [0, 1]) and
    /// returns, so the host may reuse its images. A semaphore not signalled within 10 s gives
    /// FLUX_RESULT_TIMEOUT.
    pub gpu_images: *const *mut FluxGpuImage,
    pub gpu_wait_values: *const u64,
    pub gpu_image_count: u32,
    /// Reserved, 0, never reused: it fills what would be tail padding, so that a field added
    /// later always changes `sizeof` (and `struct_size` tells the versions apart).
    pub reserved: u32,
}

/// An image-to-image job (any variant).
#[repr(C)]
pub struct FluxImageToImageDesc {
    pub struct_size: u32,
    pub prompt: *const c_char,
    pub init: FluxImageView,
    /// In (0, 1]: how much of the schedule runs (1 = text-to-image from the seed).
    pub strength: f32,
    /// Output size (0: the init image's size rounded down to multiples of 16).
    pub width: u32,
    pub height: u32,
    pub seed: u64,
    pub steps: u32,
    pub guidance: f32,
    pub t5_len: u32,
    pub priority: i32,
}

/// A job snapshot (output: set `struct_size`, the library fills what fits).
#[repr(C)]
pub struct FluxJobStatus {
    pub struct_size: u32,
    /// A `FluxJobState`.
    pub state: i32,
    pub step: u32,
    pub total: u32,
    /// 1 while a result is held.
    pub has_result: u32,
}

/// An event. Pointers inside stay valid until the next `flux_engine_poll_event` on the same
/// engine (or, in the callback, until it returns).
#[repr(C)]
pub struct FluxEvent {
    pub struct_size: u32,
    /// A `FluxEventType`.
    pub kind: i32,
    /// The job (0 for LOG).
    pub job: FluxJob,
    pub step: u32,
    pub total: u32,
    pub elapsed_ms: f64,
    pub eta_ms: f64,
    pub preview_width: u32,
    pub preview_height: u32,
    pub preview_rgb: *const u8,
    /// FAILED: the error; LOG: the line. NULL otherwise.
    pub message: *const c_char,
    /// LOG: a `FluxLogLevel`.
    pub log_level: i32,
    /// FINISHED: stage timings in milliseconds and whether the prompt embedding was cached.
    pub text_ms: f64,
    pub denoise_ms: f64,
    pub decode_ms: f64,
    pub embedding_cached: u32,
    /// Reserved, 0, never reused: it fills what would be tail padding, so that a field added
    /// later always changes `sizeof` (and `struct_size` tells the versions apart).
    pub reserved: u32,
}

/// Where the text encoders live.
#[repr(i32)]
pub enum FluxTextPlacement {
    /// On the compute device, kept between jobs.
    Resident = 0,
    /// Loaded to encode a new prompt, released right after (prompt embeddings stay cached).
    Released = 1,
    /// On the CPU while the transformer computes on the GPU (T5 runs once per prompt).
    Host = 2,
}

/// A residency plan: where the parts of a model live. Fill with `flux_residency_plan_init`.
#[repr(C)]
pub struct FluxResidencyPlan {
    pub struct_size: u32,
    /// A `FluxTextPlacement` (default RESIDENT).
    pub text_placement: i32,
    /// 0: every transformer block resident on the device (default). N > 0: blocks streamed, N of
    /// them on the device at a time, the next uploaded (on the CPU: expanded) on another thread
    /// while the current one computes.
    pub stream_window: u32,
    /// With a stream window: 0 keeps the streamed blocks in host memory in their stored form
    /// (bf16, fp8 or GGUF blocks; default); 1 reads them from the model files for every step
    /// (the system's file cache keeps what memory allows).
    pub stream_from_files: u32,
    /// With a stream window: how many of the first blocks stay resident on the device, the others
    /// being streamed (default 0; the automatic plan keeps as many as the budget allows).
    pub resident_blocks: u32,
    /// 1: the autoencoder encodes and decodes images larger than 512×512 in overlapping tiles
    /// blended at the seams (activations bounded by a tile's; slightly different pixels).
    /// Default 0.
    pub tiled_vae: u32,
}

/// What an engine holds and the plan that placed it (output).
#[repr(C)]
pub struct FluxResidency {
    pub struct_size: u32,
    pub budget: u64,
    /// Bytes of the transformer on the compute device (streamed: the blocks kept resident, the
    /// window's and what lies outside the blocks; on the CPU device, the stored blocks too).
    pub transformer: u64,
    pub autoencoder: u64,
    /// 0 while released.
    pub text_encoders: u64,
    /// 1 when the budget makes the engine release the text encoders after encoding.
    pub release_text_encoders: u32,
    /// Bytes held in host memory besides the compute device: streamed blocks in their stored
    /// form and text encoders on the CPU (0 on the CPU device, where everything is counted above).
    pub host: u64,
    /// The plan in force (while a model is loaded), as the fields of `FluxResidencyPlan` (kept
    /// flat: a nested struct could not grow without moving what follows it).
    pub text_placement: i32,
    pub stream_window: u32,
    pub stream_from_files: u32,
    pub resident_blocks: u32,
    pub tiled_vae: u32,
    /// Reserved, 0, never reused: it fills what would be tail padding, so that a field added
    /// later always changes `sizeof` (and `struct_size` tells the versions apart).
    pub reserved: u32,
}

/// What the memory of a `FluxGpuImageDesc` is.
#[repr(i32)]
pub enum FluxGpuMemoryType {
    /// `cuda_pointer`: device memory on the engine's CUDA device.
    CudaPointer = 0,
    /// `memory_handle`: a POSIX fd from `vkGetMemoryFdKHR` (`..._OPAQUE_FD_BIT`).
    OpaqueFd = 1,
    /// `memory_handle`: a Win32 NT handle from `vkGetMemoryWin32HandleKHR` (`..._OPAQUE_WIN32_BIT`).
    OpaqueWin32 = 2,
    /// `memory_handle`: a D3D12 committed resource's handle from `ID3D12Device::CreateSharedHandle`.
    D3D12Resource = 3,
}

/// What the semaphore of a `FluxGpuImageDesc` is; the engine signals it on the GPU when the
/// pixels are written.
#[repr(i32)]
pub enum FluxGpuSemaphoreType {
    None = 0,
    /// A Vulkan binary semaphore's fd (`..._OPAQUE_FD_BIT`).
    OpaqueFd = 1,
    /// A Vulkan binary semaphore's Win32 handle (`..._OPAQUE_WIN32_BIT`).
    OpaqueWin32 = 2,
    /// A Vulkan timeline semaphore's fd, signalled to the value given to the write.
    TimelineFd = 3,
    /// A Vulkan timeline semaphore's Win32 handle, signalled to the value given to the write.
    TimelineWin32 = 4,
    /// A D3D12 fence's shared handle, signalled to the value given to the write.
    D3D12Fence = 5,
}

/// A GPU image of the host's (opaque): its memory and semaphore imported into an engine's CUDA
/// context. Create with `flux_gpu_image_create`, free with `flux_gpu_image_destroy`.
pub struct FluxGpuImage {
    _private: [u8; 0],
}

/// The host's GPU memory results are written into. Fill with `flux_gpu_image_desc_init`. The
/// engine never takes the host's handles: it imports duplicates (fds) or uses them only during
/// `flux_gpu_image_create` (Win32), so close them whenever you like after that call.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FluxGpuImageDesc {
    pub struct_size: u32,
    /// A `FluxGpuMemoryType`.
    pub memory_type: i32,
    /// CUDA_POINTER: the device pointer (a `CUdeviceptr`).
    pub cuda_pointer: u64,
    /// Imported memory: the fd or HANDLE.
    pub memory_handle: i64,
    /// Imported memory: the allocation's size in bytes (`VkMemoryAllocateInfo::allocationSize`).
    pub memory_size: u64,
    /// Imported memory: 1 for a dedicated allocation (`VkMemoryDedicatedAllocateInfo`).
    pub dedicated: u32,
    /// Bytes from the start of the memory to the first pixel.
    pub offset: u64,
    pub width: u32,
    pub height: u32,
    /// Bytes from one row to the next (at least width · bytes per pixel).
    pub row_pitch: u64,
    /// `FLUX_PIXEL_FORMAT_RGBA8` or `FLUX_PIXEL_FORMAT_RGBA16F`; alpha is opaque.
    pub format: i32,
    /// The device the memory lives on (Vulkan's `VkPhysicalDeviceIDProperties::deviceUUID`);
    /// required for imported memory; all zero = not given.
    pub device_uuid: [u8; 16],
    /// A `FluxGpuSemaphoreType` (default NONE) and its fd or HANDLE.
    pub semaphore_type: i32,
    pub semaphore_handle: i64,
}
