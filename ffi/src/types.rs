//! The C-visible types. Enum-typed inputs travel as `int32_t` and are validated; the enums
//! document their values.

use std::ffi::{c_char, c_void};

/// ABI version of this header. `flux_engine_create` refuses a library with another major version.
pub const FLUX_ABI_VERSION: u32 = 2;

/// Result code of every fallible call; `flux_last_error_message()` gives the sentence.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FluxResult {
    /// Success.
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
    /// The CPU.
    Cpu = 0,
    /// CUDA device `device_index` (needs a library built with the `cuda` feature).
    Cuda = 1,
}

/// Weight dtype in memory.
#[repr(i32)]
pub enum FluxDtype {
    /// f32 on the CPU, bf16 on CUDA.
    Default = 0,
    /// 32-bit floats.
    F32 = 1,
    /// bfloat16.
    Bf16 = 2,
    /// IEEE half floats.
    F16 = 3,
}

/// Whether a model is Kontext-trained (editing follows reference images only then).
#[repr(i32)]
pub enum FluxKontext {
    /// From the file name or `model_index.json`.
    Detect = 0,
    /// Not Kontext-trained.
    No = 1,
    /// Kontext-trained.
    Yes = 2,
}

/// Pixel layout of an image. Alpha is ignored on input and opaque on output; float values are
/// the 8-bit ones / 255 (sRGB-encoded, as the 8-bit formats), native-endian.
#[repr(i32)]
pub enum FluxPixelFormat {
    /// 3 bytes per pixel.
    Rgb8 = 0,
    /// 4 bytes per pixel (Unity's RGBA32).
    Rgba8 = 1,
    /// 16 bytes per pixel, floats in [0, 1] (Unity's RGBAFloat).
    Rgba32f = 2,
    /// 8 bytes per pixel, half floats in [0, 1] (Unity's RGBAHalf).
    Rgba16f = 3,
    /// 4 bytes per pixel, blue first (Unity's BGRA32, Unreal, D3D swap chains).
    Bgra8 = 4,
    /// 1 byte per pixel, read as grey (Fill masks, depth and edge maps); a result written into
    /// it is its luma (BT.601). Host images only.
    R8 = 5,
}

/// States of a job; the last three are terminal and each job reaches exactly one.
#[repr(i32)]
pub enum FluxJobState {
    /// Waiting in the engine's queue.
    Queued = 0,
    /// Running on the engine's worker thread.
    Running = 1,
    /// Finished with a result.
    Succeeded = 2,
    /// Finished with an error (`flux_job_status` gives it).
    Failed = 3,
    /// Stopped by a cancel (or by releasing the job or destroying the engine).
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
    /// A job was submitted.
    Queued = 0,
    /// A job started running.
    Started = 1,
    /// `step` of `total` done; `elapsed_ms`, `eta_ms`.
    Progress = 2,
    /// `preview_rgb` (RGB8, `preview_width` × `preview_height`, tightly packed).
    Preview = 3,
    /// The job succeeded; image jobs fill the stage timings.
    Finished = 4,
    /// The job failed; `message` says why.
    Failed = 5,
    /// The job was cancelled.
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
    /// No logging.
    Off = 0,
    /// Errors only.
    Error = 1,
    /// Warnings and above.
    Warn = 2,
    /// Information and above.
    Info = 3,
    /// Debug output and above.
    Debug = 4,
    /// Everything.
    Trace = 5,
}

/// For jobs a user is waiting on. Job priorities: higher runs first, equal ones in submission
/// order.
pub const FLUX_PRIORITY_INTERACTIVE: i32 = 100;
/// The default priority.
pub const FLUX_PRIORITY_NORMAL: i32 = 0;
/// For background work: runs after the others.
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
    /// A `FluxKontext` (default DETECT).
    pub kontext: i32,
    /// Job priority.
    pub priority: i32,
    /// Reserved, 0, never reused: it fills what would be tail padding, so that a field added
    /// later always changes `sizeof` (and `struct_size` tells the versions apart).
    pub reserved: u32,
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

/// What kind of handle a `FluxExternalMemory` carries.
#[repr(i32)]
pub enum FluxExternalMemoryType {
    /// A POSIX fd from `vkGetMemoryFdKHR` (`VK_EXTERNAL_MEMORY_HANDLE_TYPE_OPAQUE_FD_BIT`).
    OpaqueFd = 0,
    /// A Win32 NT handle from `vkGetMemoryWin32HandleKHR` (`..._OPAQUE_WIN32_BIT`).
    OpaqueWin32 = 1,
    /// A D3D12 committed resource's handle from `ID3D12Device::CreateSharedHandle`.
    D3D12Resource = 2,
}

/// What kind of semaphore a `FluxSemaphore` is. The engine waits for it before reading an image
/// and signals it after writing one.
#[repr(i32)]
pub enum FluxSemaphoreType {
    /// A Vulkan binary semaphore's fd (`VK_EXTERNAL_SEMAPHORE_HANDLE_TYPE_OPAQUE_FD_BIT`).
    OpaqueFd = 0,
    /// A Vulkan binary semaphore's Win32 handle (`..._OPAQUE_WIN32_BIT`).
    OpaqueWin32 = 1,
    /// A Vulkan timeline semaphore's fd: waited for and signalled to the values given.
    TimelineFd = 2,
    /// A Vulkan timeline semaphore's Win32 handle: waited for and signalled to the values given.
    TimelineWin32 = 3,
    /// A D3D12 fence's shared handle: waited for and signalled to the values given.
    D3D12Fence = 4,
}

/// A job description (opaque): the prompt, the sampling settings and the images that make it
/// text-to-image, a Kontext edit or image-to-image. Create with `flux_request_create`, set what
/// you need (a setting never set keeps its stated default), submit with `flux_engine_submit` as
/// often as you like, free with `flux_request_destroy`.
pub struct FluxRequest {
    _private: [u8; 0],
}

/// An image of the host's (opaque): pixels in host memory, in CUDA device memory, or in Vulkan /
/// D3D12 memory imported into an engine's CUDA context. Used as an input (a Kontext reference,
/// an init image) and as the destination of a result (`flux_job_write_image`). The library never
/// owns the pixels: host memory must stay valid until the image is destroyed. Free with
/// `flux_image_destroy`.
pub struct FluxImage {
    _private: [u8; 0],
}

/// Size and layout of an image's pixels, whatever memory holds them. Fill with
/// `flux_image_desc_init`, then set the size and `row_pitch` (they have no default).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FluxImageDesc {
    pub struct_size: u32,
    /// Size in pixels, 1..=16384 a side (required).
    pub width: u32,
    pub height: u32,
    /// A `FluxPixelFormat` (default RGBA8). GPU images are RGBA8 or RGBA16F.
    pub format: i32,
    /// Bytes from one row to the next, at least width × bytes per pixel (required).
    pub row_pitch: u64,
    /// 1: the first row in memory is the image's bottom row (OpenGL, Unity); host images only.
    /// Default 0 (top row first).
    pub bottom_up: u32,
    /// Reserved, 0, never reused: it fills what would be tail padding, so that a field added
    /// later always changes `sizeof` (and `struct_size` tells the versions apart).
    pub reserved: u32,
}

/// Vulkan or D3D12 memory to import. Fill with `flux_external_memory_init`. The engine never
/// takes the handle: it imports a duplicate (fds) or uses it only during the call (Win32), so
/// close it whenever you like after that call.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FluxExternalMemory {
    pub struct_size: u32,
    /// A `FluxExternalMemoryType` (default OPAQUE_FD).
    pub handle_type: i32,
    /// The fd or HANDLE (required).
    pub handle: i64,
    /// The allocation's size in bytes, `VkMemoryAllocateInfo::allocationSize` (required).
    pub size: u64,
    /// Bytes from the start of the memory to the first pixel (default 0).
    pub offset: u64,
    /// The device the memory lives on, `VkPhysicalDeviceIDProperties::deviceUUID` (required;
    /// checked against the engine's device).
    pub device_uuid: [u8; 16],
    /// 1 for a dedicated allocation (`VkMemoryDedicatedAllocateInfo`; default 0).
    pub dedicated: u32,
    /// Reserved, 0, never reused: it fills what would be tail padding, so that a field added
    /// later always changes `sizeof` (and `struct_size` tells the versions apart).
    pub reserved: u32,
}

/// A Vulkan semaphore or D3D12 fence to synchronise an image with. Fill with
/// `flux_semaphore_init`; the handle is used as a `FluxExternalMemory`'s is.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FluxSemaphore {
    pub struct_size: u32,
    /// A `FluxSemaphoreType` (default OPAQUE_FD).
    pub handle_type: i32,
    /// The fd or HANDLE (required).
    pub handle: i64,
}
