namespace Flux
{
    /// <summary>Facts about the loaded native library.</summary>
    public static class FluxLibrary
    {
        /// <summary>The ABI version this binding is written for (<c>FLUX_ABI_VERSION</c>).</summary>
        public const uint BindingAbiVersion = Native.AbiVersion;

        /// <summary>The library's version, e.g. "0.1.0".</summary>
        public static string Version
        {
            get { return Utf8Strings.Read(Native.flux_version()); }
        }

        /// <summary>The ABI version the library implements.</summary>
        public static uint AbiVersion
        {
            get { return Native.flux_abi_version(); }
        }

        /// <summary>Throws a FluxException (AbiMismatch) when the library implements another ABI.</summary>
        internal static void CheckAbi()
        {
            uint abi = AbiVersion;
            if (abi != BindingAbiVersion)
            {
                throw new FluxException(FluxResult.AbiMismatch, string.Format(
                    "this binding is written for Flux Engine ABI {0}; the library {1} implements ABI {2}",
                    BindingAbiVersion, Version, abi));
            }
        }
    }
}
