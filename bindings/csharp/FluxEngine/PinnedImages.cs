using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;

namespace Flux
{
    /// <summary>
    /// Caller images pinned for one submit call (the library copies the pixels before it returns),
    /// described as <c>FluxImageView</c>s. Dispose right after the call.
    /// </summary>
    internal sealed class PinnedImages : IDisposable
    {
        readonly List<GCHandle> pins = new List<GCHandle>();

        /// <summary>One view per image, in order.</summary>
        internal Native.FluxImageView[] Views { get; }

        /// <summary>The address of <see cref="Views"/> (pinned too), for <c>FluxEditDesc.images</c>.</summary>
        internal IntPtr ViewsAddress { get; }

        internal PinnedImages(IList<ImageInput> images)
        {
            try
            {
                Views = new Native.FluxImageView[images.Count];
                for (int i = 0; i < images.Count; i++)
                {
                    ImageInput image = images[i];
                    if (image == null)
                    {
                        throw new ArgumentException(string.Format("image {0} is null", i));
                    }
                    Views[i] = new Native.FluxImageView
                    {
                        width = (uint)image.Width,
                        height = (uint)image.Height,
                        stride = (uint)image.Stride,
                        format = (int)image.Format,
                        data = Pin(image.Pixels),
                    };
                }
                ViewsAddress = Pin(Views);
            }
            catch
            {
                Dispose();
                throw;
            }
        }

        IntPtr Pin(object array)
        {
            GCHandle pin = GCHandle.Alloc(array, GCHandleType.Pinned);
            pins.Add(pin);
            return pin.AddrOfPinnedObject();
        }

        /// <summary>Unpins everything.</summary>
        public void Dispose()
        {
            foreach (GCHandle pin in pins)
            {
                pin.Free();
            }
            pins.Clear();
        }
    }
}
