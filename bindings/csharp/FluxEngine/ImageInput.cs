using System;

namespace Flux
{
    /// <summary>
    /// A caller image for <see cref="Engine.Edit"/> and <see cref="Engine.ImageToImage"/>:
    /// <see cref="Height"/> rows of <see cref="Stride"/> bytes, top to bottom, each starting with
    /// <see cref="Width"/> pixels of <see cref="Format"/>. The library copies the pixels at submit,
    /// so the array may be reused as soon as the submit call returns.
    /// </summary>
    public sealed class ImageInput
    {
        /// <summary>The pixel bytes.</summary>
        public byte[] Pixels { get; }

        /// <summary>Width in pixels.</summary>
        public int Width { get; }

        /// <summary>Height in pixels.</summary>
        public int Height { get; }

        /// <summary>Bytes from the start of one row to the next.</summary>
        public int Stride { get; }

        /// <summary>Rgb8 or Rgba8 (alpha is ignored).</summary>
        public PixelFormat Format { get; }

        /// <summary>
        /// Describes <paramref name="pixels"/>; <paramref name="stride"/> 0 means tightly packed rows.
        /// Throws when the array is too short for the size, format and stride.
        /// </summary>
        public ImageInput(byte[] pixels, int width, int height, PixelFormat format, int stride = 0)
        {
            if (pixels == null)
            {
                throw new ArgumentNullException(nameof(pixels));
            }
            if (format != PixelFormat.Rgb8 && format != PixelFormat.Rgba8)
            {
                throw new ArgumentException("input images must be Rgb8 or Rgba8", nameof(format));
            }
            if (width <= 0 || height <= 0)
            {
                throw new ArgumentOutOfRangeException(width <= 0 ? nameof(width) : nameof(height), "must be positive");
            }
            long row = (long)width * (format == PixelFormat.Rgb8 ? 3 : 4);
            if (stride == 0)
            {
                stride = (int)Math.Min(row, int.MaxValue);
            }
            if (stride < row)
            {
                throw new ArgumentOutOfRangeException(nameof(stride), stride, string.Format("smaller than a row ({0} bytes)", row));
            }
            long needed = (long)stride * (height - 1) + row;
            if (pixels.Length < needed)
            {
                throw new ArgumentException(string.Format(
                    "{0}x{1} {2} with stride {3} needs {4} bytes; the array has {5}",
                    width, height, format, stride, needed, pixels.Length), nameof(pixels));
            }
            Pixels = pixels;
            Width = width;
            Height = height;
            Stride = stride;
            Format = format;
        }
    }
}
