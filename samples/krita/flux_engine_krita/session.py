"""The plugin's engine and its one running job, driven from Krita's GUI thread.

``Session.tick`` runs from the docker's QTimer: it drains the engine's events (progress,
previews) and, when the job ends, hands its pixels to the job's ``deliver`` callback. Jobs run on
the engine's worker thread inside libflux_engine; no call here blocks.
"""

import os
from dataclasses import dataclass, field
from typing import Callable

from . import flux_engine as fe


@dataclass
class Listener:
    """What the docker shows: progress (0..1 or None, text), a preview (RGB8 bytes, w, h)."""

    progress: Callable = lambda fraction, text: None
    preview: Callable = lambda rgb, width, height: None


@dataclass
class Running:
    job: fe.Job
    #: Called with the result's BGRA8 bytes, width and height when the job succeeds.
    deliver: Callable
    params: dict = field(default_factory=dict)


class Session:
    def __init__(self, listener):
        self.listener = listener
        self.engine = None
        self.engine_key = None  # (device, model folder) the engine was made for
        self.load_job = None
        self.running = None

    @property
    def busy(self):
        return self.running is not None

    def _engine(self, device, model):
        key = (device, model)
        if self.engine is None or self.engine_key != key:
            self.shutdown()
            self.engine = fe.Engine(device=device, preview_every=1)
            # Queued ahead of the jobs it serves; a failure shows when the first one fails. A
            # transformer file (a GGUF, say) takes the other parts from its folder.
            if os.path.isfile(model):
                self.load_job = self.engine.load_model(os.path.dirname(model), transformer=model)
            else:
                self.load_job = self.engine.load_model(model)
            self.engine_key = key
        return self.engine

    def start(self, device, model, request, deliver, params):
        """Submits ``request`` on the engine for ``model`` (loading it first when it changed).
        Raises ``fe.FluxError`` when the request cannot be submitted."""
        if self.busy:
            raise fe.FluxError(fe.Result.INVALID_ARGUMENT, "a job is running: cancel it first")
        job = self._engine(device, model).submit(request)
        self.running = Running(job, deliver, params)
        self.listener.progress(0.0, "Queued")

    def cancel(self):
        if self.running is not None:
            self.running.job.cancel()
            self.listener.progress(None, "Cancelling…")

    def tick(self):
        """Moves the job on; returns whether it is still running."""
        if self.running is None:
            return False
        job = self.running.job
        for event in self.engine.events():
            if event.job != job.id:
                continue
            if event.kind == fe.EventType.PROGRESS:
                self.listener.progress(event.step / event.total, f"Step {event.step}/{event.total}")
            elif event.kind == fe.EventType.PREVIEW and event.preview_rgb:
                self.listener.preview(event.preview_rgb, *event.preview_size)
        state = job.status().state
        if state.finished:
            self._conclude(state)
        return self.running is not None

    def _conclude(self, state):
        running, self.running = self.running, None
        with running.job as job:
            if state == fe.JobState.SUCCEEDED:
                with job.image(fe.PixelFormat.BGRA8) as result:
                    running.deliver(bytes(result.data), result.width, result.height)
                self.listener.progress(1.0, f"Done: {result.width}×{result.height}")
            elif state == fe.JobState.CANCELLED:
                self.listener.progress(0.0, "Cancelled")
            else:
                self._failed(job)

    def _failed(self, job):
        try:
            job.raise_if_failed()
        except fe.FluxError as e:
            self.listener.progress(0.0, f"Failed: {e.message}")
        if self.load_job is not None and self.load_job.wait() == fe.JobState.FAILED:
            self.engine_key = None  # make the engine again next time (the folder may be fixed)

    def shutdown(self):
        """Cancels the job and closes the engine (joins its worker within one step)."""
        self.running = self.load_job = None
        if self.engine is not None:
            self.engine.close()
        self.engine = self.engine_key = None
