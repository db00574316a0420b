using System;
using System.Runtime.InteropServices;

namespace Flux
{
    /// <summary>Argument conversions from the public API to the ABI's.</summary>
    internal static class Arg
    {
        /// <summary>
        /// <paramref name="handle"/>, or ObjectDisposedException when it is closed. For every handle
        /// after the first of a call: Mono's marshaller, refusing a closed handle, keeps the
        /// reference it took on the handles before it, which then never close.
        /// </summary>
        internal static T Open<T>(T handle, string type) where T : SafeHandle
        {
            if (handle.IsClosed)
            {
                throw new ObjectDisposedException(type);
            }
            return handle;
        }

        /// <summary><paramref name="value"/> as uint; throws ArgumentOutOfRangeException when negative.</summary>
        internal static uint U32(int value, string name)
        {
            if (value < 0)
            {
                throw new ArgumentOutOfRangeException(name, value, "must not be negative");
            }
            return (uint)value;
        }

        /// <summary><paramref name="value"/> as ulong; throws ArgumentOutOfRangeException when negative.</summary>
        internal static ulong U64(long value, string name)
        {
            if (value < 0)
            {
                throw new ArgumentOutOfRangeException(name, value, "must not be negative");
            }
            return (ulong)value;
        }
    }
}
