namespace Flux
{
    /// <summary>
    /// Which model to load: a <see cref="Folder"/> (diffusers or BFL/ComfyUI single files, layout
    /// detected), or explicit paths (each a .safetensors file, a shard index or a component folder).
    /// Fields left null keep the library's defaults.
    /// </summary>
    public sealed class ModelOptions
    {
        /// <summary>A model folder; when set, the explicit paths are ignored.</summary>
        public string Folder { get; set; }

        /// <summary>The transformer weights.</summary>
        public string Transformer { get; set; }

        /// <summary>The autoencoder weights.</summary>
        public string Autoencoder { get; set; }

        /// <summary>The T5 encoder weights.</summary>
        public string T5 { get; set; }

        /// <summary>The CLIP encoder weights.</summary>
        public string Clip { get; set; }

        /// <summary>The T5 tokenizer (tokenizer.json or its folder).</summary>
        public string T5Tokenizer { get; set; }

        /// <summary>The CLIP tokenizer (vocab.json + merges.txt folder).</summary>
        public string ClipTokenizer { get; set; }

        /// <summary>Weight dtype in memory (default: f32 on the CPU, bf16 on CUDA).</summary>
        public DType? DType { get; set; }

        /// <summary>Whether the transformer is Kontext-trained (default: detected from the file names or <c>model_index.json</c>).</summary>
        public bool? Kontext { get; set; }

        /// <summary>Priority of the load job (default <see cref="JobPriority.Normal"/>).</summary>
        public int? Priority { get; set; }

        internal Native.FluxModelDesc ToDesc(Utf8Strings strings)
        {
            var d = Versioned.Init<Native.FluxModelDesc>(Native.flux_model_desc_defaults);
            d.folder = strings.Add(Folder);
            d.transformer = strings.Add(Transformer);
            d.ae = strings.Add(Autoencoder);
            d.t5 = strings.Add(T5);
            d.clip = strings.Add(Clip);
            d.t5_tokenizer = strings.Add(T5Tokenizer);
            d.clip_tokenizer = strings.Add(ClipTokenizer);
            if (DType.HasValue) d.dtype = (int)DType.Value;
            if (Kontext.HasValue) d.kontext = (int)(Kontext.Value ? FluxKontext.Yes : FluxKontext.No);
            if (Priority.HasValue) d.priority = Priority.Value;
            return d;
        }
    }
}
