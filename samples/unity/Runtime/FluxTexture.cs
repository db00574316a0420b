using UnityEngine;

namespace Flux
{
    /// <summary>
    /// Moves pixels between Flux Engine images (rows top to bottom) and Unity textures (rows
    /// bottom to top). Unity API: call from the main thread only.
    /// </summary>
    public static class FluxTexture
    {
        /// <summary>A new RGBA32 texture holding a finished job's image.</summary>
        public static Texture2D FromJob(Job job)
        {
            var size = job.ImageSize;
            Texture2D texture = null;
            Load(ref texture, job.CopyImage(PixelFormat.Rgba8), size.Width, size.Height, TextureFormat.RGBA32, 4);
            return texture;
        }

        /// <summary>
        /// Shows a Preview event's RGB8 pixels in <paramref name="texture"/>, creating it (or
        /// replacing it, destroying the old one) when it is missing or of another size.
        /// </summary>
        public static void LoadPreview(ref Texture2D texture, FluxEventData preview)
        {
            Load(ref texture, preview.PreviewRgb, preview.PreviewWidth, preview.PreviewHeight, TextureFormat.RGB24, 3);
        }

        /// <summary>
        /// The pixels of any texture as a top-down RGBA8 <see cref="ImageInput"/> for
        /// <see cref="Engine.Edit"/> or <see cref="Engine.ImageToImage"/>. Reads a copy rendered
        /// through a RenderTexture, so textures that are not readable (or compressed) work too.
        /// </summary>
        public static ImageInput ToImageInput(Texture source)
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
                byte[] pixels = FlipRows(copy.GetRawTextureData(), width * 4, height);
                return new ImageInput(pixels, width, height, PixelFormat.Rgba8);
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
                System.Buffer.BlockCopy(pixels, y * rowBytes, flipped, (height - 1 - y) * rowBytes, rowBytes);
            }
            return flipped;
        }

        static void Load(ref Texture2D texture, byte[] topDown, int width, int height, TextureFormat format, int bytesPerPixel)
        {
            if (texture == null || texture.width != width || texture.height != height || texture.format != format)
            {
                Destroy(texture);
                texture = new Texture2D(width, height, format, false);
            }
            texture.LoadRawTextureData(FlipRows(topDown, width * bytesPerPixel, height));
            texture.Apply(false);
        }

        static void Destroy(Object obj)
        {
            if (obj == null)
            {
                return;
            }
            if (Application.isPlaying)
            {
                Object.Destroy(obj);
            }
            else
            {
                Object.DestroyImmediate(obj);
            }
        }
    }
}
