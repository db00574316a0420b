using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Flux
{
    /// <summary>
    /// Owns a native <c>FluxImage*</c>: releasing it (Dispose or the finalizer) destroys the image,
    /// then unpins the managed array it wraps, if any (the library may use it until then).
    /// </summary>
    internal sealed class ImageHandle : SafeHandleZeroOrMinusOneIsInvalid
    {
        GCHandle pin;

        /// <summary>Used by the marshaller for <c>out ImageHandle</c>.</summary>
        public ImageHandle() : base(true)
        {
        }

        /// <summary>Unpins <paramref name="pixels"/> once the image is destroyed.</summary>
        internal void Keep(GCHandle pixels)
        {
            pin = pixels;
        }

        protected override bool ReleaseHandle()
        {
            if (Native.flux_image_destroy(handle) != FluxResult.Ok)
            {
                return false;
            }
            if (pin.IsAllocated)
            {
                pin.Free();
            }
            return true;
        }
    }
}
