using System;

namespace Flux
{
    /// <summary>
    /// Vulkan or D3D12 memory for <see cref="Image.ImportMemory"/> (<c>FluxExternalMemory</c>).
    /// The engine never takes the handle (it imports a duplicate of an fd, and uses a Win32 handle
    /// during the call only): close it whenever you like afterwards. Fields left null keep the
    /// library's defaults.
    /// </summary>
    public sealed class ExternalMemory
    {
        /// <summary>What <see cref="Handle"/> is (default OpaqueFd).</summary>
        public ExternalMemoryType? HandleType { get; set; }

        /// <summary>The fd, or the HANDLE as a long (required).</summary>
        public long? Handle { get; set; }

        /// <summary>The allocation's size in bytes, <c>VkMemoryAllocateInfo::allocationSize</c> (required).</summary>
        public ulong? Size { get; set; }

        /// <summary>Bytes from the start of the memory to the first pixel (default 0).</summary>
        public ulong? Offset { get; set; }

        /// <summary>The 16-byte UUID of the device the memory lives on (required; <see cref="Engine.DeviceUuid"/> is the engine's).</summary>
        public byte[] DeviceUuid { get; set; }

        /// <summary>True for a dedicated allocation (<c>VkMemoryDedicatedAllocateInfo</c>; default false).</summary>
        public bool? Dedicated { get; set; }

        internal Native.FluxExternalMemory ToNative()
        {
            var m = Versioned.Init<Native.FluxExternalMemory>(Native.flux_external_memory_defaults);
            if (HandleType.HasValue) m.handle_type = (int)HandleType.Value;
            if (Handle.HasValue) m.handle = Handle.Value;
            if (Size.HasValue) m.size = Size.Value;
            if (Offset.HasValue) m.offset = Offset.Value;
            if (DeviceUuid != null)
            {
                // The field is a fixed 16-byte array, which the marshaller copies only whole.
                if (DeviceUuid.Length != 16)
                {
                    throw new ArgumentException("a device UUID has 16 bytes", nameof(DeviceUuid));
                }
                m.device_uuid = (byte[])DeviceUuid.Clone();
            }
            if (Dedicated.HasValue) m.dedicated = Dedicated.Value ? 1u : 0u;
            return m;
        }
    }

    /// <summary>
    /// A Vulkan semaphore or D3D12 fence an image is synchronised with (<c>FluxSemaphore</c>): the
    /// engine waits for it before reading the image and signals it after writing it (timeline
    /// semaphores and fences to the values given). Its handle is used as an
    /// <see cref="ExternalMemory"/>'s is. Fields left null keep the library's defaults.
    /// </summary>
    public sealed class GpuSemaphore
    {
        /// <summary>What <see cref="Handle"/> is (default OpaqueFd).</summary>
        public SemaphoreType? HandleType { get; set; }

        /// <summary>The fd, or the HANDLE as a long (required).</summary>
        public long? Handle { get; set; }

        /// <summary>The semaphore as the optional <c>const FluxSemaphore*</c>: null, or an array of one.</summary>
        internal static Native.FluxSemaphore[] ToNative(GpuSemaphore semaphore)
        {
            if (semaphore == null)
            {
                return null;
            }
            var s = Versioned.Init<Native.FluxSemaphore>(Native.flux_semaphore_defaults);
            if (semaphore.HandleType.HasValue) s.handle_type = (int)semaphore.HandleType.Value;
            if (semaphore.Handle.HasValue) s.handle = semaphore.Handle.Value;
            return new[] { s };
        }
    }
}
