using System;
using System.Runtime.InteropServices;
using System.Threading;

namespace Flux
{
    /// <summary>
    /// A submitted job. Dispose releases it (cancelling it if it is still queued or running) and
    /// frees its result; until then the engine keeps the result. Disposing the engine ends all
    /// its jobs; disposing a job afterwards is harmless. Methods may be called from any thread.
    /// </summary>
    public sealed class Job : IDisposable
    {
        readonly EngineHandle engine;
        bool disposed;

        internal Job(EngineHandle engine, ulong id)
        {
            this.engine = engine;
            Id = id;
        }

        /// <summary>The job's handle, unique within its engine (matches <see cref="FluxEventData.JobId"/>).</summary>
        public ulong Id { get; }

        /// <summary>The job's state and progress now.</summary>
        public JobStatus Status
        {
            get
            {
                ThrowIfDisposed();
                var s = new Native.FluxJobStatus { struct_size = (uint)Marshal.SizeOf(typeof(Native.FluxJobStatus)) };
                FluxException.Check(Native.flux_job_status(engine, Id, ref s));
                return new JobStatus(s);
            }
        }

        /// <summary>Cancels the job: a queued one never starts, a running one stops within one step.</summary>
        public CancelOutcome Cancel()
        {
            ThrowIfDisposed();
            int outcome;
            FluxException.Check(Native.flux_job_cancel(engine, Id, out outcome));
            return (CancelOutcome)outcome;
        }

        /// <summary>
        /// Blocks until the job ends and returns its terminal state, or, when
        /// <paramref name="timeoutMs"/> passes first, its current state (Queued or Running; the job
        /// goes on). Do not call it from the main thread of an interactive app with a long timeout.
        /// </summary>
        public JobState Wait(int timeoutMs = Timeout.Infinite)
        {
            ThrowIfDisposed();
            if (timeoutMs < Timeout.Infinite)
            {
                throw new ArgumentOutOfRangeException(nameof(timeoutMs), timeoutMs, "must be Timeout.Infinite (-1) or more");
            }
            uint timeout = timeoutMs == Timeout.Infinite ? uint.MaxValue : (uint)timeoutMs;
            int state;
            FluxResult result = Native.flux_job_wait(engine, Id, timeout, out state);
            if (result == FluxResult.Timeout)
            {
                return Status.State;
            }
            FluxException.Check(result);
            return (JobState)state;
        }

        /// <summary>The error of a failed job; null for a job that has not failed.</summary>
        public string Error
        {
            get
            {
                ThrowIfDisposed();
                FluxResult result = Native.flux_job_error(engine, Id);
                if (result == FluxResult.JobFailed)
                {
                    return Utf8Strings.Read(Native.flux_last_error_message());
                }
                FluxException.Check(result);
                return null;
            }
        }

        /// <summary>Throws a FluxException (JobFailed) with the job's error if it failed; returns otherwise.</summary>
        public void ThrowIfFailed()
        {
            string error = Error;
            if (error != null)
            {
                throw new FluxException(FluxResult.JobFailed, error);
            }
        }

        /// <summary>The size of the finished job's image; throws FluxException (NotReady) when there is none.</summary>
        public (int Width, int Height) ImageSize
        {
            get
            {
                ThrowIfDisposed();
                uint width, height;
                FluxException.Check(Native.flux_job_image_size(engine, Id, out width, out height));
                return ((int)width, (int)height);
            }
        }

        /// <summary>
        /// Writes the finished job's image into <paramref name="image"/>, which must have the
        /// result's size, in the image's format and layout (a GPU image on the GPU, then its
        /// semaphore is signalled, timeline semaphores and fences to <paramref name="signalValue"/>).
        /// Returns once the pixels are written; the job keeps its result until disposed. Throws
        /// FluxException (NotReady) when the job has no image.
        /// </summary>
        public void WriteImage(Image image, ulong signalValue = 0)
        {
            ThrowIfDisposed();
            if (image == null)
            {
                throw new ArgumentNullException(nameof(image));
            }
            FluxException.Check(Native.flux_job_write_image(engine, Id, Arg.Open(image.Handle, nameof(Image)), signalValue));
        }

        /// <summary>
        /// A copy of the finished job's image in <paramref name="format"/>, tightly packed rows top
        /// to bottom (bottom to top with <paramref name="bottomUp"/>, as Unity's
        /// <c>Texture2D.LoadRawTextureData</c> takes them); float formats as their native-endian
        /// bytes. Throws FluxException (NotReady) when the job has no image.
        /// </summary>
        public byte[] CopyImage(PixelFormat format = PixelFormat.Rgba8, bool bottomUp = false)
        {
            var layout = Layout(format, bottomUp);
            var pixels = new byte[layout.ByteLength];
            using (Image image = Image.FromPixels(pixels, layout))
            {
                WriteImage(image);
            }
            return pixels;
        }

        /// <summary>
        /// A copy of the finished job's image as RGBA floats in [0, 1] (alpha 1), rows top to
        /// bottom (or bottom to top). Throws FluxException (NotReady) when the job has no image.
        /// </summary>
        public float[] CopyImageRgba32F(bool bottomUp = false)
        {
            var layout = Layout(PixelFormat.Rgba32F, bottomUp);
            var pixels = new float[layout.ByteLength / sizeof(float)];
            using (Image image = Image.FromPixels(pixels, layout))
            {
                WriteImage(image);
            }
            return pixels;
        }

        ImageLayout Layout(PixelFormat format, bool bottomUp)
        {
            var size = ImageSize;
            return new ImageLayout(size.Width, size.Height, format, 0, bottomUp);
        }

        /// <summary>
        /// Writes the finished job's image to <paramref name="path"/>: JPEG for .jpg/.jpeg, otherwise
        /// PNG carrying the generation parameters.
        /// </summary>
        public void Save(string path)
        {
            ThrowIfDisposed();
            if (path == null)
            {
                throw new ArgumentNullException(nameof(path));
            }
            using (var strings = new Utf8Strings())
            {
                FluxException.Check(Native.flux_job_save_image(engine, Id, strings.Add(path)));
            }
        }

        /// <summary>Releases the job (cancelling it if unfinished). Never throws.</summary>
        public void Dispose()
        {
            if (disposed)
            {
                return;
            }
            disposed = true;
            try
            {
                Native.flux_job_release(engine, Id);
            }
            catch (ObjectDisposedException)
            {
                // The engine is gone, and every job with it.
            }
        }

        void ThrowIfDisposed()
        {
            if (disposed)
            {
                throw new ObjectDisposedException(nameof(Job));
            }
        }
    }
}
