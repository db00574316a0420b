// Generated from include/flux_engine.h by ffi/tests/bindings/: do not edit.
// `FLUX_BLESS_HEADER=1 cargo test -p flux-ffi --test bindings` rewrites it.

using System;
using System.Runtime.InteropServices;

namespace Flux
{
    /// <summary>The C ABI's constants (<c>FLUX_…</c> in flux_engine.h).</summary>
    public static class FluxConstants
    {
        /// <summary>ABI version of this header. <c>flux_engine_create</c> refuses a library with another major version.</summary>
        public const int AbiVersion = 2;

        /// <summary>
        /// For jobs a user is waiting on. Job priorities: higher runs first, equal ones in submission
        /// order.
        /// </summary>
        public const int PriorityInteractive = 100;

        /// <summary>The default priority.</summary>
        public const int PriorityNormal = 0;

        /// <summary>For background work: runs after the others.</summary>
        public const int PriorityBatch = -100;

        /// <summary>
        /// Unread events an engine without a callback keeps for <c>flux_engine_poll_event</c>; beyond it the
        /// oldest are dropped (job states stay exact: <c>flux_job_status</c>).
        /// </summary>
        public const int EventQueueCapacity = 1024;

        /// <summary>
        /// The memory budget that follows the machine: the memory available when a model loads (on the
        /// CPU, the available RAM within the process's cgroup and <c>ulimit</c> limits; on CUDA, the
        /// device's free memory) less the reserve, plus what the engine already holds. A model that fits
        /// no residency plan is refused with the bytes needed and available in the error.
        /// </summary>
        public const ulong MemoryBudgetAuto = ulong.MaxValue;

        /// <summary>The default reserve <c>FLUX_MEMORY_BUDGET_AUTO</c> leaves free: 512 MiB.</summary>
        public const int MemoryReserveDefault = 512 << 20;
    }

    /// <summary>Result code of every fallible call; <c>flux_last_error_message()</c> gives the sentence.</summary>
    public enum FluxResult
    {
        /// <summary>Success.</summary>
        Ok = 0,
        /// <summary>A value is out of range or inconsistent (size, steps, enum value, priority...).</summary>
        InvalidArgument = 1,
        /// <summary>A required pointer is NULL.</summary>
        NullPointer = 2,
        /// <summary>A string is not valid UTF-8.</summary>
        InvalidUtf8 = 3,
        /// <summary>A struct's <c>struct_size</c> is smaller than its first version or absurdly large.</summary>
        BadStructSize = 4,
        /// <summary>The caller was compiled against an incompatible <c>FLUX_ABI_VERSION</c>.</summary>
        AbiMismatch = 5,
        /// <summary>The engine handle is not live (never created, or destroyed).</summary>
        InvalidHandle = 6,
        /// <summary>No such job on this engine (never submitted, or released).</summary>
        UnknownJob = 7,
        /// <summary>The job has no result (yet): not finished, failed, cancelled or already taken.</summary>
        NotReady = 8,
        /// <summary>The destination buffer is too small for the requested copy.</summary>
        BufferTooSmall = 9,
        /// <summary>A file could not be read.</summary>
        Io = 10,
        /// <summary>A weight file is corrupt or truncated.</summary>
        CorruptFile = 11,
        /// <summary>A tensor is missing from the weight files.</summary>
        MissingTensor = 12,
        /// <summary>A tensor has the wrong shape or dtype.</summary>
        BadTensor = 13,
        /// <summary>The model folder / key layout is not recognised.</summary>
        UnknownLayout = 14,
        /// <summary>A tokenizer file is missing or invalid.</summary>
        Tokenizer = 15,
        /// <summary>The job was cancelled.</summary>
        Cancelled = 16,
        /// <summary>The call is not allowed on this thread (e.g. destroy or wait inside the event callback).</summary>
        WrongThread = 17,
        /// <summary>
        /// <c>flux_job_wait</c> timed out (the job goes on), or a GPU image's semaphore was not signalled
        /// in time.
        /// </summary>
        Timeout = 18,
        /// <summary><c>flux_engine_poll_event</c> found no event.</summary>
        NoEvent = 19,
        /// <summary>A job failed; <c>flux_last_error_message()</c> says why.</summary>
        JobFailed = 20,
        /// <summary>A computation failed inside the engine.</summary>
        Compute = 21,
        /// <summary>An internal error (a caught panic); the engine stays usable.</summary>
        Internal = 22,
        /// <summary>This library or engine cannot do it (GPU memory without CUDA, or on a CPU engine).</summary>
        Unsupported = 23,
    }

    /// <summary>Device an engine computes on.</summary>
    public enum Device
    {
        /// <summary>The CPU.</summary>
        Cpu = 0,
        /// <summary>CUDA device <c>device_index</c> (needs a library built with the <c>cuda</c> feature).</summary>
        Cuda = 1,
    }

    /// <summary>Weight dtype in memory.</summary>
    public enum DType
    {
        /// <summary>f32 on the CPU, bf16 on CUDA.</summary>
        Default = 0,
        /// <summary>32-bit floats.</summary>
        F32 = 1,
        /// <summary>bfloat16.</summary>
        Bf16 = 2,
        /// <summary>IEEE half floats.</summary>
        F16 = 3,
    }

    /// <summary>
    /// Pixel layout of an image. Alpha is ignored on input and opaque on output; float values are
    /// the 8-bit ones / 255 (sRGB-encoded, as the 8-bit formats), native-endian.
    /// </summary>
    public enum PixelFormat
    {
        /// <summary>3 bytes per pixel.</summary>
        Rgb8 = 0,
        /// <summary>4 bytes per pixel (Unity's RGBA32).</summary>
        Rgba8 = 1,
        /// <summary>16 bytes per pixel, floats in [0, 1] (Unity's RGBAFloat).</summary>
        Rgba32F = 2,
        /// <summary>8 bytes per pixel, half floats in [0, 1] (Unity's RGBAHalf).</summary>
        Rgba16F = 3,
        /// <summary>4 bytes per pixel, blue first (Unity's BGRA32, Unreal, D3D swap chains).</summary>
        Bgra8 = 4,
        /// <summary>
        /// 1 byte per pixel, read as grey (Fill masks, depth and edge maps); a result written into
        /// it is its luma (BT.601). Host images only.
        /// </summary>
        R8 = 5,
    }

    /// <summary>States of a job; the last three are terminal and each job reaches exactly one.</summary>
    public enum JobState
    {
        /// <summary>Waiting in the engine's queue.</summary>
        Queued = 0,
        /// <summary>Running on the engine's worker thread.</summary>
        Running = 1,
        /// <summary>Finished with a result.</summary>
        Succeeded = 2,
        /// <summary>Finished with an error (<c>flux_job_status</c> gives it).</summary>
        Failed = 3,
        /// <summary>Stopped by a cancel (or by releasing the job or destroying the engine).</summary>
        Cancelled = 4,
    }

    /// <summary>What <c>flux_job_cancel</c> did.</summary>
    public enum CancelOutcome
    {
        /// <summary>The job was queued and will never start.</summary>
        Dequeued = 0,
        /// <summary>The job is running and stops before its next step (or before decoding).</summary>
        Requested = 1,
        /// <summary>The job had already finished; nothing changed.</summary>
        AlreadyFinished = 2,
    }

    /// <summary>Kinds of events.</summary>
    public enum FluxEventType
    {
        /// <summary>A job was submitted.</summary>
        Queued = 0,
        /// <summary>A job started running.</summary>
        Started = 1,
        /// <summary><c>step</c> of <c>total</c> done; <c>elapsed_ms</c>, <c>eta_ms</c>.</summary>
        Progress = 2,
        /// <summary><c>preview_rgb</c> (RGB8, <c>preview_width</c> × <c>preview_height</c>, tightly packed).</summary>
        Preview = 3,
        /// <summary>The job succeeded; image jobs fill the stage timings.</summary>
        Finished = 4,
        /// <summary>The job failed; <c>message</c> says why.</summary>
        Failed = 5,
        /// <summary>The job was cancelled.</summary>
        Cancelled = 6,
        /// <summary>A log line in <c>message</c> with <c>log_level</c>.</summary>
        Log = 7,
        /// <summary>
        /// Where the model lives changed (loaded, moved to another plan by the budget, or unloaded
        /// because no plan fits); <c>message</c> says why. <c>flux_engine_get_residency</c> gives the figures.
        /// </summary>
        Residency = 8,
    }

    /// <summary>Log levels (as in the <c>log</c> crate).</summary>
    public enum LogLevel
    {
        /// <summary>No logging.</summary>
        Off = 0,
        /// <summary>Errors only.</summary>
        Error = 1,
        /// <summary>Warnings and above.</summary>
        Warn = 2,
        /// <summary>Information and above.</summary>
        Info = 3,
        /// <summary>Debug output and above.</summary>
        Debug = 4,
        /// <summary>Everything.</summary>
        Trace = 5,
    }

    /// <summary>Whether a model is Kontext-trained (editing follows reference images only then).</summary>
    internal enum FluxKontext
    {
        /// <summary>From the file name or <c>model_index.json</c>.</summary>
        Detect = 0,
        /// <summary>Not Kontext-trained.</summary>
        No = 1,
        /// <summary>Kontext-trained.</summary>
        Yes = 2,
    }

    /// <summary>What kind of handle a <c>FluxExternalMemory</c> carries.</summary>
    public enum ExternalMemoryType
    {
        /// <summary>A POSIX fd from <c>vkGetMemoryFdKHR</c> (<c>VK_EXTERNAL_MEMORY_HANDLE_TYPE_OPAQUE_FD_BIT</c>).</summary>
        OpaqueFd = 0,
        /// <summary>A Win32 NT handle from <c>vkGetMemoryWin32HandleKHR</c> (<c>..._OPAQUE_WIN32_BIT</c>).</summary>
        OpaqueWin32 = 1,
        /// <summary>A D3D12 committed resource's handle from <c>ID3D12Device::CreateSharedHandle</c>.</summary>
        D3D12Resource = 2,
    }

    /// <summary>
    /// What kind of semaphore a <c>FluxSemaphore</c> is. The engine waits for it before reading an image
    /// and signals it after writing one.
    /// </summary>
    public enum SemaphoreType
    {
        /// <summary>A Vulkan binary semaphore's fd (<c>VK_EXTERNAL_SEMAPHORE_HANDLE_TYPE_OPAQUE_FD_BIT</c>).</summary>
        OpaqueFd = 0,
        /// <summary>A Vulkan binary semaphore's Win32 handle (<c>..._OPAQUE_WIN32_BIT</c>).</summary>
        OpaqueWin32 = 1,
        /// <summary>A Vulkan timeline semaphore's fd: waited for and signalled to the values given.</summary>
        TimelineFd = 2,
        /// <summary>A Vulkan timeline semaphore's Win32 handle: waited for and signalled to the values given.</summary>
        TimelineWin32 = 3,
        /// <summary>A D3D12 fence's shared handle: waited for and signalled to the values given.</summary>
        D3D12Fence = 4,
    }

    /// <summary>Where the text encoders live.</summary>
    public enum TextPlacement
    {
        /// <summary>On the compute device, kept between jobs.</summary>
        Resident = 0,
        /// <summary>Loaded to encode a new prompt, released right after (prompt embeddings stay cached).</summary>
        Released = 1,
        /// <summary>On the CPU while the transformer computes on the GPU (T5 runs once per prompt).</summary>
        Host = 2,
    }

    internal static partial class Native
    {
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr flux_version();

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern uint flux_abi_version();

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr flux_last_error_message();

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void flux_engine_desc_defaults(IntPtr desc, uint structSize);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_engine_create(ref FluxEngineDesc desc, out EngineHandle engine);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_engine_destroy(IntPtr engine);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_engine_poll_event(EngineHandle engine, ref FluxEvent result);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_engine_set_memory_budget(EngineHandle engine, ulong bytes);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_engine_set_memory_reserve(EngineHandle engine, ulong bytes);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void flux_residency_plan_defaults(IntPtr plan, uint structSize);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_engine_set_residency_plan(EngineHandle engine, ref FluxResidencyPlan plan);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_engine_get_residency(EngineHandle engine, ref FluxResidency result);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void flux_image_desc_defaults(IntPtr desc, uint structSize);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void flux_external_memory_defaults(IntPtr memory, uint structSize);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void flux_semaphore_defaults(IntPtr semaphore, uint structSize);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_image_create_host(ref FluxImageDesc desc, IntPtr data, UIntPtr dataSize, out ImageHandle image);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_image_create_cuda(EngineHandle engine, ref FluxImageDesc desc, ulong devicePointer, [In] FluxSemaphore[] semaphore, out ImageHandle image);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_image_import_memory(EngineHandle engine, ref FluxImageDesc desc, ref FluxExternalMemory memory, [In] FluxSemaphore[] semaphore, out ImageHandle image);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_image_destroy(IntPtr image);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_job_write_image(EngineHandle engine, ulong job, ImageHandle image, ulong signalValue);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_engine_device_uuid(EngineHandle engine, [Out] byte[] uuid);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_job_cancel(EngineHandle engine, ulong job, out int outcome);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_job_status(EngineHandle engine, ulong job, ref FluxJobStatus result);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_job_wait(EngineHandle engine, ulong job, uint timeoutMs, out int state);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_job_error(EngineHandle engine, ulong job);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_job_image_size(EngineHandle engine, ulong job, out uint width, out uint height);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_job_save_image(EngineHandle engine, ulong job, IntPtr path);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_job_release(EngineHandle engine, ulong job);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void flux_model_desc_defaults(IntPtr desc, uint structSize);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_engine_load_model(EngineHandle engine, ref FluxModelDesc desc, out ulong job);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_engine_unload_model(EngineHandle engine, int priority, out ulong job);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_request_create(out RequestHandle request);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_request_destroy(IntPtr request);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_request_set_prompt(RequestHandle request, IntPtr prompt);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_request_set_size(RequestHandle request, uint width, uint height);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_request_set_seed(RequestHandle request, ulong seed);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_request_set_steps(RequestHandle request, uint steps);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_request_set_guidance(RequestHandle request, float guidance);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_request_set_t5_length(RequestHandle request, uint tokens);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_request_set_priority(RequestHandle request, int priority);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_request_add_reference(RequestHandle request, ImageHandle image, ulong waitValue);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_request_set_reference_snap(RequestHandle request, [MarshalAs(UnmanagedType.U1)] bool snap);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_request_set_init_image(RequestHandle request, ImageHandle image, ulong waitValue, float strength);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_request_set_fill(RequestHandle request, ImageHandle image, ulong waitValue, ImageHandle mask);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_request_set_control_image(RequestHandle request, ImageHandle image, ulong waitValue);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_request_add_redux_image(RequestHandle request, ImageHandle image, ulong waitValue);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_request_set_negative_prompt(RequestHandle request, IntPtr prompt, float scale);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_request_clear_images(RequestHandle request);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_request_add_lora(RequestHandle request, IntPtr path, float strength);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_request_clear_loras(RequestHandle request);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_engine_submit(EngineHandle engine, RequestHandle request, out ulong job);
    }

    internal static partial class Native
    {
        [StructLayout(LayoutKind.Sequential)]
        internal struct FluxEvent
        {
            public uint struct_size;
            public int kind;
            public ulong job;
            public uint step;
            public uint total;
            public double elapsed_ms;
            public double eta_ms;
            public uint preview_width;
            public uint preview_height;
            public IntPtr preview_rgb;
            public IntPtr message;
            public int log_level;
            public double text_ms;
            public double denoise_ms;
            public double decode_ms;
            public uint embedding_cached;
            public uint reserved;
        }

        [StructLayout(LayoutKind.Sequential)]
        internal struct FluxEngineDesc
        {
            public uint struct_size;
            public uint abi_version;
            public int device;
            public uint device_index;
            public ulong memory_budget;
            public uint preview_every;
            public uint embedding_cache;
            public int log_level;
            public IntPtr callback;
            public IntPtr user_data;
            public ulong memory_reserve;
        }

        [StructLayout(LayoutKind.Sequential)]
        internal struct FluxResidencyPlan
        {
            public uint struct_size;
            public int text_placement;
            public uint stream_window;
            public uint stream_from_files;
            public uint resident_blocks;
            public uint tiled_vae;
        }

        [StructLayout(LayoutKind.Sequential)]
        internal struct FluxResidency
        {
            public uint struct_size;
            public ulong budget;
            public ulong transformer;
            public ulong autoencoder;
            public ulong text_encoders;
            public uint release_text_encoders;
            public ulong host;
            public int text_placement;
            public uint stream_window;
            public uint stream_from_files;
            public uint resident_blocks;
            public uint tiled_vae;
            public uint reserved;
        }

        [StructLayout(LayoutKind.Sequential)]
        internal struct FluxImageDesc
        {
            public uint struct_size;
            public uint width;
            public uint height;
            public int format;
            public ulong row_pitch;
            public uint bottom_up;
            public uint reserved;
        }

        [StructLayout(LayoutKind.Sequential)]
        internal struct FluxExternalMemory
        {
            public uint struct_size;
            public int handle_type;
            public long handle;
            public ulong size;
            public ulong offset;
            [MarshalAs(UnmanagedType.ByValArray, SizeConst = 16)]
            public byte[] device_uuid;
            public uint dedicated;
            public uint reserved;
        }

        [StructLayout(LayoutKind.Sequential)]
        internal struct FluxSemaphore
        {
            public uint struct_size;
            public int handle_type;
            public long handle;
        }

        [StructLayout(LayoutKind.Sequential)]
        internal struct FluxJobStatus
        {
            public uint struct_size;
            public int state;
            public uint step;
            public uint total;
            public uint has_result;
        }

        [StructLayout(LayoutKind.Sequential)]
        internal struct FluxModelDesc
        {
            public uint struct_size;
            public IntPtr folder;
            public IntPtr transformer;
            public IntPtr ae;
            public IntPtr t5;
            public IntPtr clip;
            public IntPtr t5_tokenizer;
            public IntPtr clip_tokenizer;
            public int dtype;
            public int kontext;
            public int priority;
            public uint reserved;
        }
    }
}
