using System;
using System.Runtime.InteropServices;

namespace Flux
{
    /// <summary>
    /// Size and layout of an image's pixels (<c>FluxImageDesc</c>): <see cref="Height"/> rows
    /// <see cref="RowPitch"/> bytes apart, each starting with <see cref="Width"/> pixels of
    /// <see cref="Format"/>, top row first unless <see cref="BottomUp"/>. The library checks it when
    /// an image is created.
    /// </summary>
    public struct ImageLayout
    {
        /// <summary>
        /// A layout; <paramref name="rowPitch"/> 0 means tightly packed rows, and
        /// <paramref name="bottomUp"/> that the first row in memory is the image's bottom row
        /// (Unity and OpenGL textures; host images only).
        /// </summary>
        public ImageLayout(int width, int height, PixelFormat format = PixelFormat.Rgba8, long rowPitch = 0, bool bottomUp = false)
        {
            Width = width;
            Height = height;
            Format = format;
            RowPitch = rowPitch != 0 ? rowPitch : width * (long)format.BytesPerPixel();
            BottomUp = bottomUp;
        }

        /// <summary>Width in pixels.</summary>
        public int Width { get; }

        /// <summary>Height in pixels.</summary>
        public int Height { get; }

        /// <summary>The pixel format (GPU images: Rgba8 or Rgba16F).</summary>
        public PixelFormat Format { get; }

        /// <summary>Bytes from the start of one row to the next.</summary>
        public long RowPitch { get; }

        /// <summary>True when the first row in memory is the image's bottom row.</summary>
        public bool BottomUp { get; }

        /// <summary><see cref="RowPitch"/> × <see cref="Height"/>: the bytes a buffer for this layout holds.</summary>
        public long ByteLength
        {
            get { return RowPitch * Height; }
        }

        internal Native.FluxImageDesc ToDesc()
        {
            var d = Versioned.Init<Native.FluxImageDesc>(Native.flux_image_desc_defaults);
            d.width = Arg.U32(Width, nameof(Width));
            d.height = Arg.U32(Height, nameof(Height));
            d.format = (int)Format;
            d.row_pitch = Arg.U64(RowPitch, nameof(RowPitch));
            d.bottom_up = BottomUp ? 1u : 0u;
            return d;
        }
    }

    /// <summary>
    /// Pixels in memory the caller keeps (<c>FluxImage</c>): a managed array (pinned until
    /// Dispose), other host memory, CUDA device memory or Vulkan / D3D12 memory imported into a
    /// CUDA engine. The library reads an image added to a <see cref="Request"/> (host pixels are
    /// copied then) and writes a job's result into one (<see cref="Job.WriteImage"/>), converting
    /// to its format. Dispose it when done with it: a request it was added to keeps what it needs.
    /// </summary>
    public sealed class Image : IDisposable
    {
        Image(ImageHandle handle, ImageLayout layout)
        {
            Handle = handle;
            Layout = layout;
        }

        /// <summary>How the pixels lie in memory.</summary>
        public ImageLayout Layout { get; }

        internal ImageHandle Handle { get; }

        /// <summary>Wraps 8-bit pixels (Rgb8, Rgba8, Bgra8) or any format's raw bytes; the array stays pinned until Dispose.</summary>
        public static Image FromPixels(byte[] pixels, ImageLayout layout)
        {
            return Pin(pixels, layout);
        }

        /// <summary>Wraps Rgba32F pixels; the array stays pinned until Dispose.</summary>
        public static Image FromPixels(float[] pixels, ImageLayout layout)
        {
            return Pin(pixels, layout);
        }

        /// <summary>Wraps Rgba16F pixels (IEEE half floats); the array stays pinned until Dispose.</summary>
        public static Image FromPixels(ushort[] pixels, ImageLayout layout)
        {
            return Pin(pixels, layout);
        }

        /// <summary>
        /// Wraps <paramref name="size"/> bytes of host memory at <paramref name="data"/> (a
        /// NativeArray's, a Marshal allocation...), which must stay valid until Dispose. Throws
        /// FluxException (BufferTooSmall) when the layout's rows do not fit in it.
        /// </summary>
        public static Image FromHostMemory(IntPtr data, long size, ImageLayout layout)
        {
            Native.FluxImageDesc desc = layout.ToDesc();
            ImageHandle handle;
            FluxException.Check(Native.flux_image_create_host(ref desc, data, new UIntPtr(Arg.U64(size, nameof(size))), out handle));
            return new Image(handle, layout);
        }

        /// <summary>
        /// Wraps CUDA device memory of <paramref name="engine"/>'s device (a CUDA engine):
        /// <paramref name="devicePointer"/> (a <c>CUdeviceptr</c>) is the first pixel. The engine
        /// waits for <paramref name="semaphore"/> (if any) before reading and signals it after writing.
        /// </summary>
        public static Image FromCudaPointer(Engine engine, ImageLayout layout, ulong devicePointer, GpuSemaphore semaphore = null)
        {
            if (engine == null)
            {
                throw new ArgumentNullException(nameof(engine));
            }
            Native.FluxImageDesc desc = layout.ToDesc();
            ImageHandle handle;
            FluxException.Check(Native.flux_image_create_cuda(engine.Handle, ref desc, devicePointer, GpuSemaphore.ToNative(semaphore), out handle));
            return new Image(handle, layout);
        }

        /// <summary>
        /// Imports Vulkan or D3D12 memory into <paramref name="engine"/>'s CUDA context (import
        /// once, use many times). The engine waits for <paramref name="semaphore"/> (if any) before
        /// reading and signals it after writing.
        /// </summary>
        public static Image ImportMemory(Engine engine, ImageLayout layout, ExternalMemory memory, GpuSemaphore semaphore = null)
        {
            if (engine == null || memory == null)
            {
                throw new ArgumentNullException(engine == null ? nameof(engine) : nameof(memory));
            }
            Native.FluxImageDesc desc = layout.ToDesc();
            Native.FluxExternalMemory native = memory.ToNative();
            ImageHandle handle;
            FluxException.Check(Native.flux_image_import_memory(engine.Handle, ref desc, ref native, GpuSemaphore.ToNative(semaphore), out handle));
            return new Image(handle, layout);
        }

        static Image Pin(Array pixels, ImageLayout layout)
        {
            if (pixels == null)
            {
                throw new ArgumentNullException(nameof(pixels));
            }
            GCHandle pin = GCHandle.Alloc(pixels, GCHandleType.Pinned);
            try
            {
                Image image = FromHostMemory(pin.AddrOfPinnedObject(), Buffer.ByteLength(pixels), layout);
                image.Handle.Keep(pin);
                return image;
            }
            catch
            {
                pin.Free();
                throw;
            }
        }

        /// <summary>Destroys the image (and unpins its array). The memory is untouched.</summary>
        public void Dispose()
        {
            Handle.Dispose();
        }
    }
}
