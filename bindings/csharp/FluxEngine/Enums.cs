namespace Flux
{
    // The enums of the C ABI (Device, DType, PixelFormat, JobState, ...) are generated into
    // Abi.g.cs from flux_engine.h; this file holds the helpers and the binding's own enums.

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

    /// <summary>Helpers on <see cref="JobState"/>.</summary>
    public static class JobStateExtensions
    {
        /// <summary>True for Succeeded, Failed and Cancelled: the job will not change any more.</summary>
        public static bool IsTerminal(this JobState state)
        {
            return state >= JobState.Succeeded;
        }
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
        public const int Interactive = FluxConstants.PriorityInteractive;
        /// <summary>The default.</summary>
        public const int Normal = FluxConstants.PriorityNormal;
        /// <summary>For background work.</summary>
        public const int Batch = FluxConstants.PriorityBatch;
    }
}
