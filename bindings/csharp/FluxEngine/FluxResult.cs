namespace Flux
{
    /// <summary>Result code of every fallible library call (<c>FluxResult</c> in flux_engine.h).</summary>
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
        /// <summary>The binding and the library implement different ABI versions.</summary>
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
        /// <summary>A wait timed out (the job goes on), or a GPU image's semaphore was not signalled in time.</summary>
        Timeout = 18,
        /// <summary>Polling found no event.</summary>
        NoEvent = 19,
        /// <summary>A job failed; the message says why.</summary>
        JobFailed = 20,
        /// <summary>A computation failed inside the engine.</summary>
        Compute = 21,
        /// <summary>An internal error (a caught panic); the engine stays usable.</summary>
        Internal = 22,
        /// <summary>This library or engine cannot do it (GPU memory without CUDA, or on a CPU engine).</summary>
        Unsupported = 23,
    }
}
