using System;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Flux
{
    /// <summary>
    /// Owns a native <c>FluxEngine*</c>: releasing it destroys the engine (cancelling its jobs and
    /// joining its worker thread within one denoising step), whether by Dispose or by the finalizer.
    /// The marshaller counts calls in flight, so destruction never races another call.
    /// </summary>
    internal sealed class EngineHandle : SafeHandleZeroOrMinusOneIsInvalid
    {
        // Callback mode: the GCHandle passed as the callback's user_data. The worker may call back
        // until the engine is destroyed, so it is freed here, after destruction.
        GCHandle callbackTarget;

        /// <summary>Used by the marshaller for <c>out EngineHandle</c>.</summary>
        public EngineHandle() : base(true)
        {
        }

        /// <summary>
        /// Callback mode: frees <paramref name="target"/> once the engine is destroyed, and destroys
        /// the engine when the runtime shuts down or the domain unloads (Unity's domain reload) if it
        /// is still alive then. A worker thread that calls into managed code must not outlive its
        /// domain: Mono waits for it at exit (forever), and a callback into an unloaded domain crashes.
        /// </summary>
        internal void OwnCallbackTarget(GCHandle target)
        {
            callbackTarget = target;
            AppDomain.CurrentDomain.DomainUnload += OnUnload;
            AppDomain.CurrentDomain.ProcessExit += OnUnload;
        }

        void OnUnload(object sender, EventArgs e)
        {
            Dispose();
        }

        protected override bool ReleaseHandle()
        {
            if (Native.flux_engine_destroy(handle) != FluxResult.Ok)
            {
                return false;
            }
            if (callbackTarget.IsAllocated)
            {
                callbackTarget.Free();
                AppDomain.CurrentDomain.DomainUnload -= OnUnload;
                AppDomain.CurrentDomain.ProcessExit -= OnUnload;
            }
            return true;
        }
    }
}
