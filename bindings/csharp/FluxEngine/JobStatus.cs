namespace Flux
{
    /// <summary>A snapshot of a job.</summary>
    public struct JobStatus
    {
        /// <summary>Where the job is.</summary>
        public JobState State { get; }

        /// <summary>Denoising steps done.</summary>
        public int Step { get; }

        /// <summary>Denoising steps in all (0 until known).</summary>
        public int Total { get; }

        /// <summary>True while the engine holds the job's result.</summary>
        public bool HasResult { get; }

        internal JobStatus(Native.FluxJobStatus s)
        {
            State = (JobState)s.state;
            Step = (int)s.step;
            Total = (int)s.total;
            HasResult = s.has_result != 0;
        }
    }
}
