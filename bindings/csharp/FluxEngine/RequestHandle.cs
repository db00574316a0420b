using Microsoft.Win32.SafeHandles;

namespace Flux
{
    /// <summary>Owns a native <c>FluxRequest*</c>: releasing it (Dispose or the finalizer) destroys the request.</summary>
    internal sealed class RequestHandle : SafeHandleZeroOrMinusOneIsInvalid
    {
        /// <summary>Used by the marshaller for <c>out RequestHandle</c>.</summary>
        public RequestHandle() : base(true)
        {
        }

        protected override bool ReleaseHandle()
        {
            return Native.flux_request_destroy(handle) == FluxResult.Ok;
        }
    }
}
