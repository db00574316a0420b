using System;
using System.Runtime.InteropServices;

namespace Flux
{
    // The functions of flux_engine.h, one declaration each, in the header's order. Engine handles
    // travel as EngineHandle (a SafeHandle: the marshaller keeps the engine alive during the call
    // and throws ObjectDisposedException once it is disposed). Strings are UTF-8 pointers built
    // by Utf8Strings; FluxJob is ulong.
    internal static partial class Native
    {
        /// <summary>libflux_engine.so / flux_engine.dll / libflux_engine.dylib.</summary>
        internal const string Library = "flux_engine";

        /// <summary><c>FLUX_ABI_VERSION</c> of the header these declarations mirror.</summary>
        internal const uint AbiVersion = 1;

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr flux_version();

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern uint flux_abi_version();

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr flux_last_error_message();

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void flux_engine_desc_defaults(IntPtr desc, uint structSize);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_engine_create(ref FluxEngineDesc desc, out EngineHandle engine);

        // Takes the raw pointer: it is only called from EngineHandle.ReleaseHandle.
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_engine_destroy(IntPtr engine);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void flux_model_desc_defaults(IntPtr desc, uint structSize);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_engine_load_model(EngineHandle engine, ref FluxModelDesc desc, out ulong job);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_engine_unload_model(EngineHandle engine, int priority, out ulong job);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void flux_text_to_image_desc_defaults(IntPtr desc, uint structSize);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_engine_submit_text_to_image(EngineHandle engine, ref FluxTextToImageDesc desc, out ulong job);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void flux_edit_desc_defaults(IntPtr desc, uint structSize);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_engine_submit_edit(EngineHandle engine, ref FluxEditDesc desc, out ulong job);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void flux_image_to_image_desc_defaults(IntPtr desc, uint structSize);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_engine_submit_image_to_image(EngineHandle engine, ref FluxImageToImageDesc desc, out ulong job);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_job_cancel(EngineHandle engine, ulong job, out CancelOutcome outcome);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_job_status(EngineHandle engine, ulong job, ref FluxJobStatus status);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_job_wait(EngineHandle engine, ulong job, uint timeoutMs, out JobState state);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_job_error(EngineHandle engine, ulong job);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_job_image_size(EngineHandle engine, ulong job, out uint width, out uint height);

        // Two overloads of flux_job_copy_image: the marshaller pins the array for the call.
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_job_copy_image(EngineHandle engine, ulong job, PixelFormat format, byte[] dst, UIntPtr dstStride, UIntPtr dstSize);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_job_copy_image(EngineHandle engine, ulong job, PixelFormat format, float[] dst, UIntPtr dstStride, UIntPtr dstSize);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_job_save_image(EngineHandle engine, ulong job, IntPtr path);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_job_release(EngineHandle engine, ulong job);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_engine_poll_event(EngineHandle engine, ref FluxEvent ev);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_engine_set_memory_budget(EngineHandle engine, ulong bytes);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_engine_get_residency(EngineHandle engine, ref FluxResidency residency);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_engine_set_memory_reserve(EngineHandle engine, ulong bytes);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_engine_set_residency_plan(EngineHandle engine, ref FluxResidencyPlan plan);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, EntryPoint = "flux_engine_set_residency_plan")]
        internal static extern FluxResult flux_engine_clear_residency_plan(EngineHandle engine, IntPtr plan);
    }
}
