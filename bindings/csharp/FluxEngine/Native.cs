using System;
using System.Runtime.InteropServices;

namespace Flux
{
    // The functions of flux_engine.h are declared in Abi.g.cs, generated from the header (the
    // rules are in ffi/tests/bindings/csharp.rs). Handles travel as SafeHandles (EngineHandle,
    // RequestHandle, ImageHandle): the marshaller keeps the object alive during the call and
    // throws ObjectDisposedException once it is disposed. Strings are UTF-8 pointers built by
    // Utf8Strings. This file holds what the header cannot say.
    internal static partial class Native
    {
        /// <summary>libflux_engine.so / flux_engine.dll / libflux_engine.dylib.</summary>
        internal const string Library = "flux_engine";

        /// <summary><c>FLUX_ABI_VERSION</c> of the header these declarations mirror.</summary>
        internal const uint AbiVersion = FluxConstants.AbiVersion;

        // Passes NULL for the plan (back to the automatic one).
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, EntryPoint = "flux_engine_set_residency_plan")]
        internal static extern FluxResult flux_engine_clear_residency_plan(EngineHandle engine, IntPtr plan);
    }
}
