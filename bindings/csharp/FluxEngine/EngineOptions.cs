namespace Flux
{
    /// <summary>How to create an engine. Fields left null keep the library's defaults.</summary>
    public sealed class EngineOptions
    {
        /// <summary>The device (default CPU).</summary>
        public Device? Device { get; set; }

        /// <summary>Which CUDA device (default 0).</summary>
        public int? DeviceIndex { get; set; }

        /// <summary>Bytes of device memory the engine may keep (default: automatic, the memory available when a model loads).</summary>
        public ulong? MemoryBudget { get; set; }

        /// <summary>Bytes the automatic budget leaves free for the host's renderer (default 512 MiB).</summary>
        public ulong? MemoryReserve { get; set; }

        /// <summary>Emit a Preview event every N steps (default 0: never).</summary>
        public int? PreviewEvery { get; set; }

        /// <summary>Prompt embeddings cached for reuse (default 16).</summary>
        public int? EmbeddingCache { get; set; }

        /// <summary>Most verbose level delivered as Log events (default Info).</summary>
        public LogLevel? LogLevel { get; set; }

        /// <summary>How events reach <see cref="Engine.PollEvent"/> (default Polling).</summary>
        public EventDelivery EventDelivery { get; set; } = EventDelivery.Polling;

        internal Native.FluxEngineDesc ToDesc()
        {
            var d = Versioned.Init<Native.FluxEngineDesc>(Native.flux_engine_desc_defaults);
            // The defaults carry the library's ABI version; the check needs this binding's.
            d.abi_version = Native.AbiVersion;
            if (Device.HasValue) d.device = (int)Device.Value;
            if (DeviceIndex.HasValue) d.device_index = Arg.U32(DeviceIndex.Value, nameof(DeviceIndex));
            if (MemoryBudget.HasValue) d.memory_budget = MemoryBudget.Value;
            if (MemoryReserve.HasValue) d.memory_reserve = MemoryReserve.Value;
            if (PreviewEvery.HasValue) d.preview_every = Arg.U32(PreviewEvery.Value, nameof(PreviewEvery));
            if (EmbeddingCache.HasValue) d.embedding_cache = Arg.U32(EmbeddingCache.Value, nameof(EmbeddingCache));
            if (LogLevel.HasValue) d.log_level = (int)LogLevel.Value;
            return d;
        }
    }
}
