using System;
using System.Runtime.InteropServices;

namespace Flux
{
    // The functions of flux_engine.h, one declaration each, in the header's order. Handles travel
    // as SafeHandles (EngineHandle, RequestHandle, ImageHandle): the marshaller keeps the object
    // alive during the call and throws ObjectDisposedException once it is disposed. Strings are
    // UTF-8 pointers built by Utf8Strings; FluxJob is ulong; a `const FluxSemaphore*` that may be
    // NULL is an array of none or one.
    internal static partial class Native
    {
        /// <summary>libflux_engine.so / flux_engine.dll / libflux_engine.dylib.</summary>
        internal const string Library = "flux_engine";

        /// <summary><c>FLUX_ABI_VERSION</c> of the header these declarations mirror.</summary>
        internal const uint AbiVersion = FluxConstants.AbiVersion;

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
        internal static extern FluxResult flux_engine_poll_event(EngineHandle engine, ref FluxEvent ev);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_engine_set_memory_budget(EngineHandle engine, ulong bytes);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_engine_set_memory_reserve(EngineHandle engine, ulong bytes);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_engine_set_residency_plan(EngineHandle engine, ref FluxResidencyPlan plan);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, EntryPoint = "flux_engine_set_residency_plan")]
        internal static extern FluxResult flux_engine_clear_residency_plan(EngineHandle engine, IntPtr plan);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_engine_get_residency(EngineHandle engine, ref FluxResidency residency);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void flux_image_desc_defaults(IntPtr desc, uint structSize);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void flux_external_memory_defaults(IntPtr memory, uint structSize);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void flux_semaphore_defaults(IntPtr semaphore, uint structSize);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_image_create_host(ref FluxImageDesc desc, IntPtr data, UIntPtr dataSize, out ImageHandle image);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_image_create_cuda(EngineHandle engine, ref FluxImageDesc desc, ulong devicePointer,
            [In] FluxSemaphore[] semaphore, out ImageHandle image);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_image_import_memory(EngineHandle engine, ref FluxImageDesc desc, ref FluxExternalMemory memory,
            [In] FluxSemaphore[] semaphore, out ImageHandle image);

        // Takes the raw pointer: it is only called from ImageHandle.ReleaseHandle.
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_image_destroy(IntPtr image);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_job_write_image(EngineHandle engine, ulong job, ImageHandle image, ulong signalValue);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_engine_device_uuid(EngineHandle engine, [Out] byte[] uuid);

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

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_job_save_image(EngineHandle engine, ulong job, IntPtr path);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_job_release(EngineHandle engine, ulong job);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void flux_model_desc_defaults(IntPtr desc, uint structSize);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_engine_load_model(EngineHandle engine, ref FluxModelDesc desc, out ulong job);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_engine_unload_model(EngineHandle engine, int priority, out ulong job);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_request_create(out RequestHandle request);

        // Takes the raw pointer: it is only called from RequestHandle.ReleaseHandle.
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_request_destroy(IntPtr request);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_request_set_prompt(RequestHandle request, IntPtr prompt);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_request_set_size(RequestHandle request, uint width, uint height);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_request_set_seed(RequestHandle request, ulong seed);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_request_set_steps(RequestHandle request, uint steps);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_request_set_guidance(RequestHandle request, float guidance);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_request_set_t5_length(RequestHandle request, uint tokens);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_request_set_priority(RequestHandle request, int priority);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_request_add_reference(RequestHandle request, ImageHandle image, ulong waitValue);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_request_set_reference_snap(RequestHandle request, [MarshalAs(UnmanagedType.U1)] bool snap);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_request_set_init_image(RequestHandle request, ImageHandle image, ulong waitValue, float strength);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_request_set_fill(RequestHandle request, ImageHandle image, ulong waitValue, ImageHandle mask);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_request_set_control_image(RequestHandle request, ImageHandle image, ulong waitValue);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_request_add_redux_image(RequestHandle request, ImageHandle image, ulong waitValue);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_request_set_negative_prompt(RequestHandle request, IntPtr prompt, float scale);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_request_clear_images(RequestHandle request);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_request_add_lora(RequestHandle request, IntPtr path, float strength);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_request_clear_loras(RequestHandle request);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern FluxResult flux_engine_submit(EngineHandle engine, RequestHandle request, out ulong job);
    }
}
