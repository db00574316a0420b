using System;
using System.Runtime.InteropServices;

namespace Flux
{
    /// <summary>
    /// Moves versioned structs (those starting with <c>struct_size</c>) across the boundary so that
    /// this binding works with a library whose structs are larger (newer) or smaller (older).
    /// </summary>
    internal static class Versioned
    {
        /// <summary>
        /// A struct holding the library's defaults (its <c>*_defaults</c> function, given this
        /// binding's size of the struct, so the library reads and writes only the fields this
        /// binding knows).
        /// </summary>
        internal static T Init<T>(Action<IntPtr, uint> defaults) where T : struct
        {
            int size = Marshal.SizeOf(typeof(T));
            IntPtr p = AllocZeroed(size);
            try
            {
                defaults(p, (uint)size);
                return Marshal.PtrToStructure<T>(p);
            }
            finally
            {
                Marshal.FreeHGlobal(p);
            }
        }

        /// <summary>
        /// Reads a struct the library wrote at <paramref name="p"/> (its first field its own
        /// <c>struct_size</c>): the fields both sides know; fields an older library lacks are zero.
        /// </summary>
        internal static T Read<T>(IntPtr p) where T : struct
        {
            int ours = Marshal.SizeOf(typeof(T));
            int theirs = Marshal.ReadInt32(p);
            if (theirs >= ours)
            {
                return Marshal.PtrToStructure<T>(p);
            }
            var prefix = new byte[theirs];
            Marshal.Copy(p, prefix, 0, theirs);
            IntPtr scratch = AllocZeroed(ours);
            try
            {
                Marshal.Copy(prefix, 0, scratch, theirs);
                return Marshal.PtrToStructure<T>(scratch);
            }
            finally
            {
                Marshal.FreeHGlobal(scratch);
            }
        }

        static IntPtr AllocZeroed(int bytes)
        {
            IntPtr p = Marshal.AllocHGlobal(bytes);
            Marshal.Copy(new byte[bytes], 0, p, bytes);
            return p;
        }
    }
}
