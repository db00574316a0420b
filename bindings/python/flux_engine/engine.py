"""The engine and its jobs: a thin, Pythonic layer over the C ABI.

All methods may be called from any thread. Jobs run on the engine's worker thread; the calls
here only submit, query and write results, except ``Job.wait``/``Job.result``, which block the
caller (in short slices, so Ctrl-C still works).
"""

import ctypes
import threading
import time
from dataclasses import dataclass

from . import _native
from .enums import (
    CancelOutcome,
    Device,
    DType,
    JobState,
    Kontext,
    LogLevel,
    PixelFormat,
    Result,
    TextPlacement,
)
from .closing import Closeable
from .errors import FluxError, check
from .events import Event
from .images import Image
from .requests import Request, unsigned, utf8

_WAIT_SLICE_MS = 100


def _path(p):
    return None if p is None else utf8(str(p), "path")


def _kontext(value):
    """A ``Kontext`` from ``None`` (detect), a bool or a ``Kontext``."""
    if isinstance(value, bool):
        return Kontext.YES if value else Kontext.NO
    return Kontext.DETECT if value is None else Kontext(value)


@dataclass(frozen=True)
class JobStatus:
    """A job's state and progress."""

    state: JobState
    step: int
    total: int
    has_result: bool


@dataclass(frozen=True)
class Plan:
    """A residency plan: where the text encoders live, how many transformer blocks are on the
    device at a time (0: all of them resident; N: streamed, N at a time, from host memory or with
    ``stream_from_files`` from the model files, the first ``resident_blocks`` kept resident), and
    whether the autoencoder works on large images tile by tile."""

    text_placement: TextPlacement = TextPlacement.RESIDENT
    stream_window: int = 0
    tiled_vae: bool = False
    stream_from_files: bool = False
    resident_blocks: int = 0


@dataclass(frozen=True)
class Residency:
    """What an engine holds in memory, in bytes per component, and the plan that placed it
    (``host``: bytes in host memory besides the compute device)."""

    budget: int
    transformer: int
    autoencoder: int
    text_encoders: int
    release_text_encoders: bool
    plan: Plan
    host: int


class Job(Closeable):
    """A submitted job. Releasing it (``release()``, leaving a ``with`` block, or garbage
    collection) cancels it if it still runs and frees its result."""

    def __init__(self, engine, job_id):
        self.engine = engine
        self.id = job_id
        self._released = False

    def __repr__(self):
        return f"<flux_engine.Job {self.id}>"

    def _call(self, name, *args):
        if self._released:
            raise FluxError(Result.UNKNOWN_JOB, f"job {self.id} was released")
        check(getattr(_native.lib(), name)(self.engine._handle(), self.id, *args))

    def status(self):
        """The job's ``JobStatus``."""
        s = _native.JobStatus(struct_size=ctypes.sizeof(_native.JobStatus))
        self._call("flux_job_status", ctypes.byref(s))
        return JobStatus(JobState(s.state), s.step, s.total, bool(s.has_result))

    def cancel(self):
        """Cancels the job: a queued one never starts, a running one stops within one step.
        Returns the ``CancelOutcome``."""
        out = ctypes.c_int32()
        self._call("flux_job_cancel", ctypes.byref(out))
        return CancelOutcome(out.value)

    def wait(self, timeout=None):
        """Blocks until the job ends and returns its terminal ``JobState``. With ``timeout``
        (seconds), raises ``FluxError`` (``Result.TIMEOUT``) if it has not ended by then."""
        deadline = None if timeout is None else time.monotonic() + timeout
        state = ctypes.c_int32()
        while True:
            left_ms = _WAIT_SLICE_MS
            if deadline is not None:
                left_ms = max(0, min(left_ms, int((deadline - time.monotonic()) * 1000)))
            code = _native.lib().flux_job_wait(
                self.engine._handle(), self.id, left_ms, ctypes.byref(state)
            )
            if code == Result.TIMEOUT and (deadline is None or time.monotonic() < deadline):
                continue
            check(code)
            return JobState(state.value)

    def raise_if_failed(self):
        """Raises ``FluxError`` (``JOB_FAILED`` with the job's error) if the job failed."""
        self._call("flux_job_error")

    def image_size(self):
        """``(width, height)`` of a finished job's image."""
        w, h = ctypes.c_uint32(), ctypes.c_uint32()
        self._call("flux_job_image_size", ctypes.byref(w), ctypes.byref(h))
        return w.value, h.value

    def write_image(self, image, signal_value=0):
        """Writes the finished job's image into ``image`` (an ``Image`` of the result's size):
        a host image gets the pixels in its format and row order; a GPU image is written on the
        GPU, then its semaphore signalled (timeline semaphores and fences to
        ``signal_value``). The engine keeps the result until the job is released."""
        self._call("flux_job_write_image", image._handle(),
                   unsigned(signal_value, 64, "signal_value"))

    def image(self, format=PixelFormat.RGBA8, *, bottom_up=False):
        """The finished job's image in a new host ``Image`` of ``format`` (tightly packed; the
        bottom row first with ``bottom_up``)."""
        width, height = self.image_size()
        image = Image(width, height, format, bottom_up=bottom_up)
        self.write_image(image)
        return image

    def finish(self, timeout=None):
        """Waits for the job; raises ``FluxError`` if it failed (``JOB_FAILED``) or was
        cancelled (``CANCELLED``). Returns the job."""
        if self.wait(timeout) == JobState.CANCELLED:
            raise FluxError(Result.CANCELLED, f"job {self.id} was cancelled")
        self.raise_if_failed()
        return self

    def result(self, format=PixelFormat.RGBA8, timeout=None, *, bottom_up=False):
        """Waits for the job (as ``finish``), then returns its image (as ``image``)."""
        return self.finish(timeout).image(format, bottom_up=bottom_up)

    def save(self, path):
        """Writes the finished job's image: JPEG for .jpg/.jpeg, otherwise PNG with the
        generation parameters embedded."""
        self._call("flux_job_save_image", _path(path))

    def release(self):
        """Forgets the job (cancelling it if it still runs). Idempotent."""
        if not self._released and self.engine._ptr:
            self._released = True
            check(_native.lib().flux_job_release(self.engine._ptr, self.id))

    close = release


class Engine(Closeable):
    """A FLUX engine with its own worker thread. Use as a context manager, or call
    ``close()``: it cancels every job and joins the worker (within one denoising step).

    ``on_event``, if given, is called with every ``Event`` on the engine's worker thread (and
    on the submitting thread for QUEUED): keep it short, do not call ``close()`` or
    ``Job.wait`` from it. Without it, events are read with ``poll_event()``.
    """

    def __init__(
        self,
        device=Device.CPU,
        device_index=0,
        memory_budget=None,
        memory_reserve=None,
        preview_every=0,
        embedding_cache=16,
        log_level=LogLevel.INFO,
        on_event=None,
    ):
        lib = _native.lib()
        desc = _native.defaults(_native.EngineDesc)
        desc.device = Device(device)
        desc.device_index = device_index
        if memory_budget is not None:
            desc.memory_budget = memory_budget
        if memory_reserve is not None:
            desc.memory_reserve = memory_reserve
        desc.preview_every = preview_every
        desc.embedding_cache = embedding_cache
        desc.log_level = LogLevel(log_level)
        self._callback = None
        if on_event is not None:
            self._callback = _native.EventCallback(
                lambda e, _user: on_event(Event.from_native(e.contents))
            )
            desc.callback = ctypes.cast(self._callback, ctypes.c_void_p)
        self._ptr = None
        self._poll_lock = threading.Lock()
        ptr = ctypes.c_void_p()
        check(lib.flux_engine_create(ctypes.byref(desc), ctypes.byref(ptr)))
        self._ptr = ptr.value

    def _handle(self):
        if not self._ptr:
            raise FluxError(Result.INVALID_HANDLE, "the engine is closed")
        return self._ptr

    @property
    def closed(self):
        return not self._ptr

    def close(self):
        """Cancels every job, joins the worker and frees the engine. Idempotent."""
        if self._ptr:
            check(_native.lib().flux_engine_destroy(self._ptr))
            self._ptr = None

    def device_uuid(self):
        """The 16-byte UUID of the engine's CUDA device, to pick the same device in Vulkan
        (``UNSUPPORTED`` on CPU engines)."""
        out = (ctypes.c_uint8 * 16)()
        check(_native.lib().flux_engine_device_uuid(self._handle(), out))
        return bytes(out)

    def load_model(
        self,
        folder=None,
        *,
        transformer=None,
        ae=None,
        t5=None,
        clip=None,
        t5_tokenizer=None,
        clip_tokenizer=None,
        dtype=DType.DEFAULT,
        kontext=None,
        priority=0,
    ):
        """Queues loading a model from a ``folder`` (layout detected) and/or explicit paths.
        ``kontext``: ``None`` (detected from the files), a bool or a ``Kontext``. A missing
        folder or unknown layout raises now; weights load on the worker."""
        desc = _native.defaults(_native.ModelDesc)
        desc.folder = _path(folder)
        desc.transformer, desc.ae, desc.t5, desc.clip = map(_path, (transformer, ae, t5, clip))
        desc.t5_tokenizer, desc.clip_tokenizer = _path(t5_tokenizer), _path(clip_tokenizer)
        desc.dtype = DType(dtype)
        desc.kontext = _kontext(kontext)
        desc.priority = priority
        job = ctypes.c_uint64()
        check(_native.lib().flux_engine_load_model(
            self._handle(), ctypes.byref(desc), ctypes.byref(job)))
        return Job(self, job.value)

    def unload_model(self, priority=0):
        """Queues unloading the model."""
        job = ctypes.c_uint64()
        check(_native.lib().flux_engine_unload_model(self._handle(), priority, ctypes.byref(job)))
        return Job(self, job.value)

    def submit(self, request):
        """Queues the job a ``Request`` describes (the request may be changed and submitted
        again). Returns its ``Job``."""
        job = ctypes.c_uint64()
        ptr = request._ptr
        if not ptr:
            raise FluxError(Result.INVALID_HANDLE, "the request is closed")
        check(_native.lib().flux_engine_submit(self._handle(), ptr, ctypes.byref(job)))
        return Job(self, job.value)

    def _submit_new(self, prompt, settings, images=(), init=None, strength=None):
        with Request(prompt, **settings) as request:
            for image in images:
                request.add_reference(image)
            if init is not None:
                request.set_init_image(init, strength)
            return self.submit(request)

    def text_to_image(self, prompt, *, loras=None, **settings):
        """Queues a text-to-image job; ``settings`` are ``Request``'s keywords (``width``,
        ``height``, ``seed``, ``steps``, ``guidance``, ``t5_len``, ``priority``), the library's
        defaults where not given. ``loras``: ``[(path, strength), ...]`` (or bare paths, at
        strength 1), applied to this job only."""
        return self._submit_new(prompt, dict(settings, loras=loras))

    def edit(self, prompt, images, *, loras=None, **settings):
        """Queues a Kontext edit of one reference image or a list of 1 to 4 (``Image`` or numpy
        arrays; host pixels are copied now). The output takes the first reference's size,
        snapped to Kontext's trained resolutions unless ``snap=False``, unless ``width`` and
        ``height`` are given. Defaults: 30 steps, guidance 2.5. ``loras`` as in
        ``text_to_image``."""
        refs = list(images) if isinstance(images, (list, tuple)) else [images]
        if not refs:
            raise ValueError("an edit needs 1 to 4 reference images, got none")
        return self._submit_new(prompt, dict(settings, loras=loras), images=refs)

    def image_to_image(self, prompt, init, *, strength=0.8, loras=None, **settings):
        """Queues an image-to-image job from ``init`` (an ``Image`` or a numpy array; copied
        now); ``strength`` in (0, 1] is how much of the schedule runs (not to be confused with
        a LoRA's strength). The output takes the init image's size rounded down to multiples
        of 16 unless ``width`` and ``height`` are given. ``loras`` as in ``text_to_image``."""
        return self._submit_new(
            prompt, dict(settings, loras=loras), init=init, strength=strength
        )

    def poll_event(self):
        """The next ``Event``, or ``None``. Never blocks. The engine keeps the latest 1024
        unread events (``FLUX_EVENT_QUEUE_CAPACITY``); older ones are dropped."""
        e = _native.Event(struct_size=ctypes.sizeof(_native.Event))
        # An event's pointers live until the next poll: copy it out before another thread polls.
        with self._poll_lock:
            code = _native.lib().flux_engine_poll_event(self._handle(), ctypes.byref(e))
            if code == Result.NO_EVENT:
                return None
            check(code)
            return Event.from_native(e)

    def events(self):
        """Every event queued now (a list; never blocks)."""
        out = []
        while (e := self.poll_event()) is not None:
            out.append(e)
        return out

    def set_memory_budget(self, nbytes):
        """Sets the memory budget in bytes (2**64 - 1: the memory available at the next load, less
        the reserve); the residency plan follows before the next denoising step or job."""
        check(_native.lib().flux_engine_set_memory_budget(self._handle(), nbytes))

    def set_memory_reserve(self, nbytes):
        """Sets the bytes the automatic budget leaves free; it applies at the next load."""
        check(_native.lib().flux_engine_set_memory_reserve(self._handle(), nbytes))

    def set_plan(self, plan):
        """Forces a residency ``Plan`` (``None``: chosen for the budget again)."""
        native = None
        if plan is not None:
            native = _native.ResidencyPlan(
                struct_size=ctypes.sizeof(_native.ResidencyPlan),
                text_placement=TextPlacement(plan.text_placement),
                stream_window=plan.stream_window,
                tiled_vae=int(plan.tiled_vae),
                stream_from_files=int(plan.stream_from_files),
                resident_blocks=plan.resident_blocks,
            )
            native = ctypes.byref(native)
        check(_native.lib().flux_engine_set_residency_plan(self._handle(), native))

    def residency(self):
        """What the engine holds now (``Residency``)."""
        r = _native.Residency(struct_size=ctypes.sizeof(_native.Residency))
        check(_native.lib().flux_engine_get_residency(self._handle(), ctypes.byref(r)))
        plan = Plan(
            TextPlacement(r.text_placement),
            r.stream_window,
            bool(r.tiled_vae),
            bool(r.stream_from_files),
            r.resident_blocks,
        )
        return Residency(
            r.budget,
            r.transformer,
            r.autoencoder,
            r.text_encoders,
            bool(r.release_text_encoders),
            plan,
            r.host,
        )


