using System;
using System.Runtime.InteropServices;

namespace Flux
{
    /// <summary>
    /// A Flux engine: a worker thread with its own device, model, job queue and events. Submit
    /// calls return a <see cref="Job"/> at once; the work happens on the worker thread. Every
    /// method may be called from any thread. Follow progress with <see cref="PollEvent"/>.
    /// Dispose cancels every job and joins the worker (within one denoising step); afterwards every
    /// method, and every method of its jobs, throws ObjectDisposedException. Always dispose
    /// engines: the finalizer is only a fallback (and does not run for callback-mode engines,
    /// which are destroyed when their domain unloads at the latest).
    /// </summary>
    /// <example><code>
    /// using (var engine = Engine.Create())
    /// using (var load = engine.LoadModel("models/flux1-schnell"))
    /// using (var request = new Request("a lighthouse at dusk") { Seed = 42 })
    /// using (var job = engine.Submit(request))
    /// {
    ///     job.Wait();
    ///     job.ThrowIfFailed();
    ///     job.Save("out.png");
    /// }
    /// </code></example>
    public sealed class Engine : IDisposable
    {
        readonly EngineHandle handle;
        // Set in callback mode: where the callback puts events for PollEvent.
        readonly CallbackInbox inbox;
        // A polled event's pointers live until the next poll: one poll (and its copy) at a time.
        readonly object pollLock = new object();

        internal EngineHandle Handle
        {
            get { return handle; }
        }

        Engine(EngineHandle handle, CallbackInbox inbox)
        {
            this.handle = handle;
            this.inbox = inbox;
        }

        /// <summary>
        /// Creates an engine and starts its worker thread. Throws FluxException (AbiMismatch) when
        /// the library implements another ABI than this binding, or for invalid options.
        /// </summary>
        public static Engine Create(EngineOptions options = null)
        {
            options = options ?? new EngineOptions();
            FluxLibrary.CheckAbi();
            Native.FluxEngineDesc desc = options.ToDesc();
            CallbackInbox inbox = null;
            GCHandle target = default(GCHandle);
            if (options.EventDelivery == EventDelivery.Callback)
            {
                inbox = new CallbackInbox();
                target = GCHandle.Alloc(inbox);
                desc.callback = CallbackInbox.FunctionPointer;
                desc.user_data = GCHandle.ToIntPtr(target);
            }
            EngineHandle handle;
            FluxResult result = Native.flux_engine_create(ref desc, out handle);
            if (result != FluxResult.Ok)
            {
                FluxException error = FluxException.FromLastError(result);
                if (target.IsAllocated)
                {
                    target.Free();
                }
                throw error;
            }
            if (target.IsAllocated)
            {
                handle.OwnCallbackTarget(target);
            }
            return new Engine(handle, inbox);
        }

        /// <summary>Queues loading the model in <paramref name="folder"/> (replacing the current one).</summary>
        public Job LoadModel(string folder)
        {
            return LoadModel(new ModelOptions { Folder = folder });
        }

        /// <summary>
        /// Queues loading a model (replacing the current one). A missing folder or an unknown
        /// layout throws here; weights load on the worker (wait for the job, then ThrowIfFailed).
        /// </summary>
        public Job LoadModel(ModelOptions model)
        {
            using (var strings = new Utf8Strings())
            {
                Native.FluxModelDesc desc = model.ToDesc(strings);
                ulong id;
                return Submitted(Native.flux_engine_load_model(handle, ref desc, out id), id);
            }
        }

        /// <summary>Queues unloading the model.</summary>
        public Job UnloadModel(int priority = JobPriority.Normal)
        {
            ulong id;
            return Submitted(Native.flux_engine_unload_model(handle, priority, out id), id);
        }

        /// <summary>
        /// Queues the job <paramref name="request"/> describes: text-to-image, a Kontext edit or
        /// image-to-image, as its images make it. A request without a prompt throws FluxException
        /// (InvalidArgument) here.
        /// </summary>
        public Job Submit(Request request)
        {
            if (request == null)
            {
                throw new ArgumentNullException(nameof(request));
            }
            ulong id;
            return Submitted(Native.flux_engine_submit(handle, Arg.Open(request.Handle, nameof(Request)), out id), id);
        }

        Job Submitted(FluxResult result, ulong id)
        {
            FluxException.Check(result);
            return new Job(handle, id);
        }

        /// <summary>
        /// The next event, without blocking; false when there is none. Call it regularly (e.g.
        /// every frame) in either delivery mode: the latest 1024 unread events are kept
        /// (<c>FLUX_EVENT_QUEUE_CAPACITY</c>), older ones are dropped.
        /// </summary>
        public bool PollEvent(out FluxEventData ev)
        {
            lock (pollLock)
            {
                if (inbox != null)
                {
                    // With a callback the library queues nothing for polling.
                    return inbox.TryDequeue(out ev);
                }
                Native.FluxEvent native;
                ev = PollNative(out native) ? new FluxEventData(native) : null;
                return ev != null;
            }
        }

        bool PollNative(out Native.FluxEvent native)
        {
            native = new Native.FluxEvent { struct_size = (uint)Marshal.SizeOf(typeof(Native.FluxEvent)) };
            FluxResult result = Native.flux_engine_poll_event(handle, ref native);
            if (result == FluxResult.NoEvent)
            {
                return false;
            }
            FluxException.Check(result);
            return true;
        }

        /// <summary>
        /// The 16-byte UUID of the engine's CUDA device, to allocate memory for
        /// <see cref="Image.ImportMemory"/> on the same device
        /// (<c>VkPhysicalDeviceIDProperties::deviceUUID</c>). FluxException (Unsupported) on CPU engines.
        /// </summary>
        public byte[] DeviceUuid
        {
            get
            {
                var uuid = new byte[16];
                FluxException.Check(Native.flux_engine_device_uuid(handle, uuid));
                return uuid;
            }
        }

        /// <summary>Sets the device memory budget in bytes; the residency plan follows before the next denoising step or job.</summary>
        public void SetMemoryBudget(ulong bytes)
        {
            FluxException.Check(Native.flux_engine_set_memory_budget(handle, bytes));
        }

        /// <summary>Sets the bytes the automatic budget leaves free; it applies at the next load.</summary>
        public void SetMemoryReserve(ulong bytes)
        {
            FluxException.Check(Native.flux_engine_set_memory_reserve(handle, bytes));
        }

        /// <summary>Forces a residency plan (null: chosen for the budget again).</summary>
        public void SetPlan(ResidencyPlan? plan)
        {
            if (plan is ResidencyPlan p)
            {
                var native = p.ToNative();
                FluxException.Check(Native.flux_engine_set_residency_plan(handle, ref native));
            }
            else
            {
                FluxException.Check(Native.flux_engine_clear_residency_plan(handle, IntPtr.Zero));
            }
        }

        /// <summary>What the engine holds in device memory now.</summary>
        public Residency GetResidency()
        {
            var r = new Native.FluxResidency { struct_size = (uint)Marshal.SizeOf(typeof(Native.FluxResidency)) };
            FluxException.Check(Native.flux_engine_get_residency(handle, ref r));
            return new Residency(r);
        }

        /// <summary>
        /// Cancels every job, joins the worker thread (within one denoising step) and frees the
        /// engine. If another thread is inside a call on this engine (say Job.Wait), that happens
        /// when the call returns.
        /// </summary>
        public void Dispose()
        {
            handle.Dispose();
        }
    }
}
