namespace Flux
{
    /// <summary>Device an engine computes on.</summary>
    public enum Device
    {
        /// <summary>The CPU.</summary>
        Cpu = 0,
        /// <summary>CUDA device <see cref="EngineOptions.DeviceIndex"/> (needs a library built with CUDA).</summary>
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
    /// the 8-bit ones / 255 (sRGB-encoded, as the 8-bit formats), native-endian. Host images take
    /// every format, in and out; GPU images Rgba8 and Rgba16F.
    /// </summary>
    public enum PixelFormat
    {
        /// <summary>3 bytes per pixel.</summary>
        Rgb8 = 0,
        /// <summary>4 bytes per pixel (Unity's RGBA32).</summary>
        Rgba8 = 1,
        /// <summary>4 floats per pixel in [0, 1] (Unity's RGBAFloat).</summary>
        Rgba32F = 2,
        /// <summary>4 half floats per pixel in [0, 1] (Unity's RGBAHalf).</summary>
        Rgba16F = 3,
        /// <summary>4 bytes per pixel, blue first (Unity's BGRA32, D3D swap chains).</summary>
        Bgra8 = 4,
        /// <summary>1 byte per pixel, read as grey (Fill masks, depth and edge maps; Unity's R8); results get the luma.</summary>
        R8 = 5,
    }

    /// <summary>Helpers on <see cref="PixelFormat"/>.</summary>
    public static class PixelFormatExtensions
    {
        /// <summary>Bytes one pixel of <paramref name="format"/> takes.</summary>
        public static int BytesPerPixel(this PixelFormat format)
        {
            switch (format)
            {
                case PixelFormat.R8: return 1;
                case PixelFormat.Rgb8: return 3;
                case PixelFormat.Rgba8: case PixelFormat.Bgra8: return 4;
                case PixelFormat.Rgba16F: return 8;
                case PixelFormat.Rgba32F: return 16;
                default: throw new System.ArgumentOutOfRangeException(nameof(format), format, "not a PixelFormat");
            }
        }
    }

    /// <summary>What kind of handle an <see cref="ExternalMemory"/> carries.</summary>
    public enum ExternalMemoryType
    {
        /// <summary>A POSIX fd from <c>vkGetMemoryFdKHR</c> (<c>VK_EXTERNAL_MEMORY_HANDLE_TYPE_OPAQUE_FD_BIT</c>).</summary>
        OpaqueFd = 0,
        /// <summary>A Win32 NT handle from <c>vkGetMemoryWin32HandleKHR</c> (<c>..._OPAQUE_WIN32_BIT</c>).</summary>
        OpaqueWin32 = 1,
        /// <summary>A D3D12 committed resource's handle from <c>ID3D12Device::CreateSharedHandle</c>.</summary>
        D3D12Resource = 2,
    }

    /// <summary>What kind of semaphore a <see cref="GpuSemaphore"/> is.</summary>
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

    /// <summary>States of a job; the last three are terminal and each job reaches exactly one.</summary>
    public enum JobState
    {
        /// <summary>Waiting in the engine's queue.</summary>
        Queued = 0,
        /// <summary>Running on the engine's worker thread.</summary>
        Running = 1,
        /// <summary>Finished with a result.</summary>
        Succeeded = 2,
        /// <summary>Finished with an error (<see cref="Job.ThrowIfFailed"/>).</summary>
        Failed = 3,
        /// <summary>Stopped by <see cref="Job.Cancel"/> (or by disposing the job or engine).</summary>
        Cancelled = 4,
    }

    /// <summary>Helpers on <see cref="JobState"/>.</summary>
    public static class JobStateExtensions
    {
        /// <summary>True for Succeeded, Failed and Cancelled: the job will not change any more.</summary>
        public static bool IsTerminal(this JobState state)
        {
            return state >= JobState.Succeeded;
        }
    }

    /// <summary>What <see cref="Job.Cancel"/> did.</summary>
    public enum CancelOutcome
    {
        /// <summary>The job was queued and will never start.</summary>
        Dequeued = 0,
        /// <summary>The job is running and stops before its next step (or before decoding).</summary>
        Requested = 1,
        /// <summary>The job had already finished; nothing changed.</summary>
        AlreadyFinished = 2,
    }

    /// <summary>
    /// Kinds of events (see <see cref="FluxEventData"/> for the fields each fills). Prefixed, unlike
    /// the other enums, so that it does not clash with UnityEngine.EventType.
    /// </summary>
    public enum FluxEventType
    {
        /// <summary>A job was submitted.</summary>
        Queued = 0,
        /// <summary>A job started running.</summary>
        Started = 1,
        /// <summary>A denoising step finished: Step of Total, ElapsedMs, EtaMs.</summary>
        Progress = 2,
        /// <summary>A small RGB8 image of the current latent: PreviewRgb, PreviewWidth, PreviewHeight.</summary>
        Preview = 3,
        /// <summary>The job succeeded; image jobs fill the stage timings.</summary>
        Finished = 4,
        /// <summary>The job failed; Message says why.</summary>
        Failed = 5,
        /// <summary>The job was cancelled.</summary>
        Cancelled = 6,
        /// <summary>A log line in Message with LogLevel (Job is 0).</summary>
        Log = 7,
        /// <summary>Where the model lives changed; Message says why, Engine.GetResidency the figures.</summary>
        Residency = 8,
    }

    /// <summary>Where the text encoders live.</summary>
    public enum TextPlacement
    {
        /// <summary>On the compute device, kept between jobs.</summary>
        Resident = 0,
        /// <summary>Loaded to encode a new prompt, released right after.</summary>
        Released = 1,
        /// <summary>On the CPU while the transformer computes on the GPU.</summary>
        Host = 2,
    }

    /// <summary>Log levels (as in Rust's <c>log</c> crate).</summary>
    public enum LogLevel
    {
        /// <summary>No logging.</summary>
        Off = 0,
        /// <summary>Errors only.</summary>
        Error = 1,
        /// <summary>Warnings and above.</summary>
        Warn = 2,
        /// <summary>Information and above (the default).</summary>
        Info = 3,
        /// <summary>Debug output and above.</summary>
        Debug = 4,
        /// <summary>Everything.</summary>
        Trace = 5,
    }

    /// <summary>How an engine's events reach <see cref="Engine.PollEvent"/>.</summary>
    public enum EventDelivery
    {
        /// <summary>PollEvent polls the library's queue (recommended).</summary>
        Polling = 0,
        /// <summary>
        /// The library calls a static callback on its worker thread, which only queues a managed copy;
        /// PollEvent drains that copy. Events carry the same data either way.
        /// </summary>
        Callback = 1,
    }

    /// <summary>Job priorities: higher runs first, equal ones in submission order.</summary>
    public static class JobPriority
    {
        /// <summary>For jobs a user is waiting on.</summary>
        public const int Interactive = 100;
        /// <summary>The default.</summary>
        public const int Normal = 0;
        /// <summary>For background work.</summary>
        public const int Batch = -100;
    }
}
