namespace Flux
{
    /// <summary>What an engine holds in device memory, in bytes per component.</summary>
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

        internal Residency(Native.FluxResidency r)
        {
            Budget = r.budget;
            Transformer = r.transformer;
            Autoencoder = r.autoencoder;
            TextEncoders = r.text_encoders;
            ReleasesTextEncoders = r.release_text_encoders != 0;
        }
    }
}
