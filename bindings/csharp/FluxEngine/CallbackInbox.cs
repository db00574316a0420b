using System;
using System.Collections.Concurrent;
using System.Runtime.InteropServices;

namespace Flux
{
    /// <summary>
    /// The events an engine in <see cref="EventDelivery.Callback"/> mode received through the
    /// library's callback, waiting for <see cref="Engine.PollEvent"/>.
    /// </summary>
    /// <remarks>
    /// The library calls <see cref="OnEvent"/> on the engine's worker thread (and on the calling
    /// thread inside submit and cancel). It only copies the event into the queue: no Unity API
    /// there, and no exception may unwind into native code. Each engine passes a GCHandle to its
    /// inbox as <c>user_data</c>, so the one static callback reaches the right engine's queue.
    /// EngineHandle frees that GCHandle after destroying the native engine.
    /// </remarks>
    internal sealed class CallbackInbox
    {
        // A static method (IL2CPP can only call back into static methods), and a delegate kept
        // alive for the whole process, since engines may call it until they are destroyed.
        static readonly Native.NativeEventCallback Callback = OnEvent;

        /// <summary>The function pointer to put in <c>FluxEngineDesc.callback</c>.</summary>
        internal static readonly IntPtr FunctionPointer = Marshal.GetFunctionPointerForDelegate(Callback);

        // Unread events kept, as the library keeps for polling (FLUX_EVENT_QUEUE_CAPACITY).
        const int Capacity = FluxConstants.EventQueueCapacity;

        readonly ConcurrentQueue<FluxEventData> queue = new ConcurrentQueue<FluxEventData>();

        [MonoPInvokeCallback(typeof(Native.NativeEventCallback))]
        static void OnEvent(IntPtr ev, IntPtr userData)
        {
            try
            {
                var inbox = (CallbackInbox)GCHandle.FromIntPtr(userData).Target;
                inbox.queue.Enqueue(new FluxEventData(Versioned.Read<Native.FluxEvent>(ev)));
                // A host that polls rarely loses the oldest events, not memory.
                FluxEventData dropped;
                while (inbox.queue.Count > Capacity && inbox.queue.TryDequeue(out dropped))
                {
                }
            }
            catch (Exception)
            {
                // Unwinding into the library is undefined behaviour. Only running out of memory
                // can land here; the event is lost, the job's state (Job.Status) is not.
            }
        }

        /// <summary>The oldest received event, if any.</summary>
        internal bool TryDequeue(out FluxEventData ev)
        {
            return queue.TryDequeue(out ev);
        }
    }
}
