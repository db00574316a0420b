using System;
using System.Runtime.InteropServices;

namespace Flux
{
    // Mirrors of the structs in flux_engine.h, field for field and with the header's names, so they
    // can be checked against it line by line. Enum-typed fields are int32 as in the header.
    // Versioned structs start with struct_size; see Versioned.cs for how they are initialised.
    internal static partial class Native
    {
        /// <summary><c>FluxEventCallback</c>: receives every event of an engine (see CallbackInbox).</summary>
        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        internal delegate void NativeEventCallback(IntPtr ev, IntPtr userData);

        [StructLayout(LayoutKind.Sequential)]
        internal struct FluxEvent
        {
            public uint struct_size;
            public int kind;
            public ulong job;
            public uint step;
            public uint total;
            public double elapsed_ms;
            public double eta_ms;
            public uint preview_width;
            public uint preview_height;
            public IntPtr preview_rgb;
            public IntPtr message;
            public int log_level;
            public double text_ms;
            public double denoise_ms;
            public double decode_ms;
            public uint embedding_cached;
            public uint reserved;
        }

        [StructLayout(LayoutKind.Sequential)]
        internal struct FluxEngineDesc
        {
            public uint struct_size;
            public uint abi_version;
            public int device;
            public uint device_index;
            public ulong memory_budget;
            public uint preview_every;
            public uint embedding_cache;
            public int log_level;
            public IntPtr callback;
            public IntPtr user_data;
            public ulong memory_reserve;
        }

        [StructLayout(LayoutKind.Sequential)]
        internal struct FluxModelDesc
        {
            public uint struct_size;
            public IntPtr folder;
            public IntPtr transformer;
            public IntPtr ae;
            public IntPtr t5;
            public IntPtr clip;
            public IntPtr t5_tokenizer;
            public IntPtr clip_tokenizer;
            public int dtype;
            public int kontext;
            public int priority;
            public uint reserved;
        }

        [StructLayout(LayoutKind.Sequential)]
        internal struct FluxImageDesc
        {
            public uint struct_size;
            public uint width;
            public uint height;
            public int format;
            public ulong row_pitch;
            public uint bottom_up;
            public uint reserved;
        }

        [StructLayout(LayoutKind.Sequential)]
        internal struct FluxExternalMemory
        {
            public uint struct_size;
            public int handle_type;
            public long handle;
            public ulong size;
            public ulong offset;
            [MarshalAs(UnmanagedType.ByValArray, SizeConst = 16)]
            public byte[] device_uuid;
            public uint dedicated;
            public uint reserved;
        }

        [StructLayout(LayoutKind.Sequential)]
        internal struct FluxSemaphore
        {
            public uint struct_size;
            public int handle_type;
            public long handle;
        }

        [StructLayout(LayoutKind.Sequential)]
        internal struct FluxJobStatus
        {
            public uint struct_size;
            public int state;
            public uint step;
            public uint total;
            public uint has_result;
        }

        [StructLayout(LayoutKind.Sequential)]
        internal struct FluxResidency
        {
            public uint struct_size;
            public ulong budget;
            public ulong transformer;
            public ulong autoencoder;
            public ulong text_encoders;
            public uint release_text_encoders;
            public ulong host;
            public int text_placement;
            public uint stream_window;
            public uint stream_from_files;
            public uint resident_blocks;
            public uint tiled_vae;
            public uint reserved;
        }

        [StructLayout(LayoutKind.Sequential)]
        internal struct FluxResidencyPlan
        {
            public uint struct_size;
            public int text_placement;
            public uint stream_window;
            public uint stream_from_files;
            public uint resident_blocks;
            public uint tiled_vae;
        }
    }
}
