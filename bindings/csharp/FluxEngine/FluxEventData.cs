using System;
using System.Runtime.InteropServices;

namespace Flux
{
    /// <summary>
    /// An engine event, copied into managed memory (its preview pixels and message included), so
    /// it stays valid after the next poll. Which fields are filled depends on <see cref="Kind"/>.
    /// </summary>
    public sealed class FluxEventData
    {
        /// <summary>What happened.</summary>
        public FluxEventType Kind { get; }

        /// <summary>The job it concerns (<see cref="Job.Id"/>); 0 for Log.</summary>
        public ulong JobId { get; }

        /// <summary>Progress and Preview: steps done.</summary>
        public int Step { get; }

        /// <summary>Progress: steps in all.</summary>
        public int Total { get; }

        /// <summary>Progress: milliseconds since the job's denoising started.</summary>
        public double ElapsedMs { get; }

        /// <summary>Progress: estimated milliseconds left.</summary>
        public double EtaMs { get; }

        /// <summary>Preview: width of <see cref="PreviewRgb"/>.</summary>
        public int PreviewWidth { get; }

        /// <summary>Preview: height of <see cref="PreviewRgb"/>.</summary>
        public int PreviewHeight { get; }

        /// <summary>Preview: RGB8 pixels, rows top to bottom, tightly packed; null for other kinds.</summary>
        public byte[] PreviewRgb { get; }

        /// <summary>Failed: the error; Log: the line; null otherwise.</summary>
        public string Message { get; }

        /// <summary>Log: the line's level.</summary>
        public LogLevel LogLevel { get; }

        /// <summary>Finished (image jobs): text encoding milliseconds.</summary>
        public double TextMs { get; }

        /// <summary>Finished (image jobs): denoising milliseconds.</summary>
        public double DenoiseMs { get; }

        /// <summary>Finished (image jobs): decoding milliseconds.</summary>
        public double DecodeMs { get; }

        /// <summary>Finished: whether the prompt embedding came from the cache.</summary>
        public bool EmbeddingCached { get; }

        internal FluxEventData(Native.FluxEvent e)
        {
            Kind = (FluxEventType)e.kind;
            JobId = e.job;
            Step = (int)e.step;
            Total = (int)e.total;
            ElapsedMs = e.elapsed_ms;
            EtaMs = e.eta_ms;
            PreviewWidth = (int)e.preview_width;
            PreviewHeight = (int)e.preview_height;
            if (e.preview_rgb != IntPtr.Zero)
            {
                PreviewRgb = new byte[PreviewWidth * PreviewHeight * 3];
                Marshal.Copy(e.preview_rgb, PreviewRgb, 0, PreviewRgb.Length);
            }
            Message = Utf8Strings.Read(e.message);
            LogLevel = (LogLevel)e.log_level;
            TextMs = e.text_ms;
            DenoiseMs = e.denoise_ms;
            DecodeMs = e.decode_ms;
            EmbeddingCached = e.embedding_cached != 0;
        }

        /// <summary>A one-line description, for logs.</summary>
        public override string ToString()
        {
            switch (Kind)
            {
                case FluxEventType.Progress:
                    return string.Format("job {0}: step {1}/{2}", JobId, Step, Total);
                case FluxEventType.Preview:
                    return string.Format("job {0}: preview {1}x{2} at step {3}", JobId, PreviewWidth, PreviewHeight, Step);
                case FluxEventType.Failed:
                    return string.Format("job {0}: failed: {1}", JobId, Message);
                case FluxEventType.Log:
                    return string.Format("{0}: {1}", LogLevel, Message);
                default:
                    return string.Format("job {0}: {1}", JobId, Kind);
            }
        }
    }
}
