using System;

namespace Flux
{
    /// <summary>A failed library call: its <see cref="FluxResult"/> code and the library's message.</summary>
    public sealed class FluxException : Exception
    {
        /// <summary>The result code the library returned.</summary>
        public FluxResult Code { get; }

        /// <summary>An exception with a code and a message.</summary>
        public FluxException(FluxResult code, string message) : base(message)
        {
            Code = code;
        }

        /// <summary>Throws unless <paramref name="result"/> is Ok.</summary>
        internal static void Check(FluxResult result)
        {
            if (result != FluxResult.Ok)
            {
                throw FromLastError(result);
            }
        }

        /// <summary>
        /// An exception for <paramref name="code"/> with the calling thread's last error message.
        /// Call it right after the failing call, on the same thread: the next failing call replaces it.
        /// </summary>
        internal static FluxException FromLastError(FluxResult code)
        {
            return new FluxException(code, Utf8Strings.Read(Native.flux_last_error_message()));
        }
    }
}
