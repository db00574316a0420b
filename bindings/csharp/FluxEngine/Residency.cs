using System.Runtime.InteropServices;

namespace Flux
{
    /// <summary>
    /// A residency plan: where the text encoders live, and how many transformer blocks are on
    /// the device at a time (0: all resident; N: streamed from host memory, N at a time).
    /// </summary>
    public struct ResidencyPlan
    {
        /// <summary>Where the text encoders live.</summary>
        public TextPlacement TextPlacement { get; set; }

        /// <summary>0: every block resident; N: N blocks on the device at a time.</summary>
        public uint StreamWindow { get; set; }

        /// <summary>With a stream window: read the blocks from the model files for every step instead of keeping them in host memory.</summary>
        public bool StreamFromFiles { get; set; }

        /// <summary>With a stream window: how many of the first blocks stay resident.</summary>
        public uint ResidentBlocks { get; set; }

        /// <summary>Whether the autoencoder works on images larger than 512×512 tile by tile.</summary>
        public bool TiledVae { get; set; }

        internal ResidencyPlan(Native.FluxResidencyPlan p)
        {
            TextPlacement = (TextPlacement)p.text_placement;
            StreamWindow = p.stream_window;
            StreamFromFiles = p.stream_from_files != 0;
            ResidentBlocks = p.resident_blocks;
            TiledVae = p.tiled_vae != 0;
        }

        internal Native.FluxResidencyPlan ToNative() => new Native.FluxResidencyPlan
        {
            struct_size = (uint)Marshal.SizeOf(typeof(Native.FluxResidencyPlan)),
            text_placement = (int)TextPlacement,
            stream_window = StreamWindow,
            stream_from_files = StreamFromFiles ? 1u : 0u,
            resident_blocks = ResidentBlocks,
            tiled_vae = TiledVae ? 1u : 0u,
        };
    }

    /// <summary>What an engine holds, in bytes per component, and the plan that placed it.</summary>
    public struct Residency
    {
        /// <summary>The memory budget.</summary>
        public ulong Budget { get; }

        /// <summary>The transformer.</summary>
        public ulong Transformer { get; }

        /// <summary>The autoencoder.</summary>
        public ulong Autoencoder { get; }

        /// <summary>The T5 and CLIP encoders (0 while released).</summary>
        public ulong TextEncoders { get; }

        /// <summary>True when the budget makes the engine release the text encoders after encoding.</summary>
        public bool ReleasesTextEncoders { get; }

        /// <summary>The plan in force.</summary>
        public ResidencyPlan Plan { get; }

        /// <summary>Bytes in host memory besides the compute device (streamed blocks, text encoders on the CPU).</summary>
        public ulong Host { get; }

        internal Residency(Native.FluxResidency r)
        {
            Budget = r.budget;
            Transformer = r.transformer;
            Autoencoder = r.autoencoder;
            TextEncoders = r.text_encoders;
            ReleasesTextEncoders = r.release_text_encoders != 0;
            Plan = new ResidencyPlan(new Native.FluxResidencyPlan
            {
                text_placement = r.text_placement,
                stream_window = r.stream_window,
                stream_from_files = r.stream_from_files,
                resident_blocks = r.resident_blocks,
                tiled_vae = r.tiled_vae,
            });
            Host = r.host;
        }
    }
}
