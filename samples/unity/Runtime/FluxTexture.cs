using System;
using UnityEngine;

namespace Flux
{
    /// <summary>
    /// Moves pixels between Flux Engine and Unity textures, whose rows run bottom to top: the
    /// library writes results bottom-up in the texture's own format and reads textures as
    /// bottom-up images, so nothing is flipped here (but previews). Float formats hold the 8-bit
    /// values / 255, sRGB-encoded like them. Unity API: call from the main thread only.
    /// </summary>
    public static class FluxTexture
    {
        /// <summary>
        /// The pixel format of a texture format the library writes: RGB24, RGBA32, BGRA32,
        /// RGBAHalf or RGBAFloat. Throws ArgumentException for the others.
        /// </summary>
        public static PixelFormat PixelFormatOf(TextureFormat format)
        {
            switch (format)
            {
                case TextureFormat.RGB24: return PixelFormat.Rgb8;
                case TextureFormat.RGBA32: return PixelFormat.Rgba8;
                case TextureFormat.BGRA32: return PixelFormat.Bgra8;
                case TextureFormat.RGBAHalf: return PixelFormat.Rgba16F;
                case TextureFormat.RGBAFloat: return PixelFormat.Rgba32F;
                default:
                    throw new ArgumentException("Flux Engine writes RGB24, RGBA32, BGRA32, RGBAHalf and RGBAFloat textures, not " + format, nameof(format));
            }
        }

        /// <summary>A new texture in <paramref name="format"/> (see <see cref="PixelFormatOf"/>) holding a finished job's image.</summary>
        public static Texture2D FromJob(Job job, TextureFormat format = TextureFormat.RGBA32)
        {
            var size = job.ImageSize;
            var texture = new Texture2D(size.Width, size.Height, format, false);
            try
            {
                Write(job, texture);
                return texture;
            }
            catch
            {
                Destroy(texture);
                throw;
            }
        }

        /// <summary>
        /// Writes a finished job's image into <paramref name="texture"/>, which must have the
        /// result's size and a format of <see cref="PixelFormatOf"/>; its mipmaps are regenerated.
        /// </summary>
        public static void Write(Job job, Texture2D texture)
        {
            var layout = new ImageLayout(texture.width, texture.height, PixelFormatOf(texture.format), 0, bottomUp: true);
            var pixels = new byte[layout.ByteLength];
            using (Image image = Image.FromPixels(pixels, layout))
            {
                job.WriteImage(image); // throws when the texture is not the result's size
            }
            texture.SetPixelData(pixels, 0);
            texture.Apply(true);
        }

        /// <summary>
        /// Shows a Preview event's RGB8 pixels (rows top to bottom) in <paramref name="texture"/>,
        /// creating it (or replacing it, destroying the old one) when it is missing or of another size.
        /// </summary>
        public static void LoadPreview(ref Texture2D texture, FluxEventData preview)
        {
            int width = preview.PreviewWidth, height = preview.PreviewHeight;
            if (texture == null || texture.width != width || texture.height != height || texture.format != TextureFormat.RGB24)
            {
                Destroy(texture);
                texture = new Texture2D(width, height, TextureFormat.RGB24, false);
            }
            texture.LoadRawTextureData(FlipRows(preview.PreviewRgb, width * 3, height));
            texture.Apply(false);
        }

        /// <summary>
        /// The pixels of any texture as a bottom-up RGBA8 <see cref="Image"/>, to add to a
        /// <see cref="Request"/> as a reference or init image (then dispose it). Reads a copy
        /// rendered through a RenderTexture, so textures that are not readable (or compressed) work too.
        /// </summary>
        public static Image ToImage(Texture source)
        {
            int width = source.width, height = source.height;
            RenderTexture target = RenderTexture.GetTemporary(width, height, 0, RenderTextureFormat.ARGB32, RenderTextureReadWrite.sRGB);
            RenderTexture previous = RenderTexture.active;
            var copy = new Texture2D(width, height, TextureFormat.RGBA32, false);
            try
            {
                Graphics.Blit(source, target);
                RenderTexture.active = target;
                copy.ReadPixels(new Rect(0, 0, width, height), 0, 0, false);
                return Image.FromPixels(copy.GetRawTextureData(), new ImageLayout(width, height, PixelFormat.Rgba8, 0, bottomUp: true));
            }
            finally
            {
                RenderTexture.active = previous;
                RenderTexture.ReleaseTemporary(target);
                Destroy(copy);
            }
        }

        /// <summary>A copy of <paramref name="pixels"/> with its rows in reverse order.</summary>
        public static byte[] FlipRows(byte[] pixels, int rowBytes, int height)
        {
            var flipped = new byte[rowBytes * height];
            for (int y = 0; y < height; y++)
            {
                Buffer.BlockCopy(pixels, y * rowBytes, flipped, (height - 1 - y) * rowBytes, rowBytes);
            }
            return flipped;
        }

        static void Destroy(UnityEngine.Object obj)
        {
            if (obj == null)
            {
                return;
            }
            if (Application.isPlaying)
            {
                UnityEngine.Object.Destroy(obj);
            }
            else
            {
                UnityEngine.Object.DestroyImmediate(obj);
            }
        }
    }
}
