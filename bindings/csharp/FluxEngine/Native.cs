using System;
using System.Runtime.InteropServices;

namespace Flux
{
    // The functions and structs of flux_engine.h are declared in Abi.g.cs, generated from the
    // header (the rules are in ffi/tests/bindings/csharp.rs); structs field for field with the
    // header's names, enum-typed fields int32 as in the header. Handles travel as SafeHandles
    // (EngineHandle, RequestHandle, ImageHandle): the marshaller keeps the object alive during the
    // call and throws ObjectDisposedException once it is disposed. Strings are UTF-8 pointers
    // built by Utf8Strings; versioned structs are initialised as Versioned.cs says. This file
    // holds what the header cannot say.
    internal static partial class Native
    {
        /// <summary>libflux_engine.so / flux_engine.dll / libflux_engine.dylib.</summary>
        internal const string Library = "flux_engine";

        /// <summary><c>FLUX_ABI_VERSION</c> of the header these declarations mirror.</summary>
        internal const uint AbiVersion = FluxConstants.AbiVersion;

        /// <summary><c>FluxEventCallback</c>: receives every event of an engine (see CallbackInbox).</summary>
        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        internal delegate void NativeEventCallback(IntPtr ev, IntPtr userData);

        // Passes NULL for the plan (back to the automatic one).
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, EntryPoint = "flux_engine_set_residency_plan")]
        internal static extern FluxResult flux_engine_clear_residency_plan(EngineHandle engine, IntPtr plan);
    }
}
