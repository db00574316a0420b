using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Text;

namespace Flux
{
    /// <summary>
    /// NUL-terminated UTF-8 copies of strings for one library call, freed together by Dispose
    /// (use in a <c>using</c> block around the call). Explicit UTF-8 on every platform: the
    /// marshaller's <c>CharSet</c> would be ANSI or UTF-16 depending on the platform.
    /// </summary>
    internal sealed class Utf8Strings : IDisposable
    {
        readonly List<IntPtr> allocations = new List<IntPtr>();

        /// <summary>A native UTF-8 copy of <paramref name="s"/>, or IntPtr.Zero for null.</summary>
        internal IntPtr Add(string s)
        {
            if (s == null)
            {
                return IntPtr.Zero;
            }
            if (s.IndexOf('\0') >= 0)
            {
                throw new ArgumentException("strings passed to Flux Engine cannot contain NUL characters");
            }
            byte[] bytes = Encoding.UTF8.GetBytes(s);
            IntPtr p = Marshal.AllocHGlobal(bytes.Length + 1);
            allocations.Add(p);
            Marshal.Copy(bytes, 0, p, bytes.Length);
            Marshal.WriteByte(p, bytes.Length, 0);
            return p;
        }

        /// <summary>Frees every copy made by <see cref="Add"/>.</summary>
        public void Dispose()
        {
            foreach (IntPtr p in allocations)
            {
                Marshal.FreeHGlobal(p);
            }
            allocations.Clear();
        }

        /// <summary>Decodes a NUL-terminated UTF-8 string owned by the library (null for NULL).</summary>
        internal static string Read(IntPtr p)
        {
            if (p == IntPtr.Zero)
            {
                return null;
            }
            int length = 0;
            while (Marshal.ReadByte(p, length) != 0)
            {
                length++;
            }
            var bytes = new byte[length];
            Marshal.Copy(p, bytes, 0, length);
            return Encoding.UTF8.GetString(bytes);
        }
    }
}
