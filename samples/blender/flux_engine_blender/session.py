"""The add-on's engine and its one running job, driven from Blender's main thread.

``Session.tick`` runs as a ``bpy.app.timers`` callback (main thread): it drains the engine's
events, moves the progress bar, paints previews and, when the job ends, writes the result into
its image. Jobs themselves run on the engine's worker thread inside libflux_engine.
"""

import bpy

from . import pixels, preferences

try:
    from . import flux_engine as fe
except ImportError as e:  # the repository folder, not a built add-on
    raise ImportError(
        "the Flux Engine binding is not bundled: build the add-on with samples/blender/package.py"
    ) from e

TICK_SECONDS = 0.1


class Session:
    def __init__(self):
        self.engine = None
        self.engine_key = None  # (device, preview_every) the engine was made with
        self.model = None  # the folder the engine has loaded (or is loading)
        self.load_job = None
        self.job = None
        self.image_name = None  # where the running job's pixels go
        self.scene_name = None  # whose settings show its progress

    @property
    def busy(self):
        return self.job is not None

    def _engine(self, prefs):
        key = (prefs.device, prefs.preview_every)
        if self.engine is None or self.engine_key != key:
            self.shutdown()
            device = fe.Device.CUDA if prefs.device == "CUDA" else fe.Device.CPU
            self.engine = fe.Engine(device=device, preview_every=prefs.preview_every)
            self.engine_key = key
        folder = bpy.path.abspath(prefs.model_folder)
        if self.model != folder:
            # Queued ahead of the job it serves; a failure shows when that job fails.
            self.load_job = self.engine.load_model(folder)
            self.model = folder
        return self.engine

    def start(self, context, request, image_name):
        """Submits ``request`` (a ``fe.Request``); its result will be written into
        ``image_name``. Raises ``fe.FluxError`` if it cannot be submitted."""
        engine = self._engine(preferences.get(context))
        self.job = engine.submit(request)
        self.image_name = image_name
        self.scene_name = context.scene.name
        self._report(0.0, "Queued")
        if not bpy.app.timers.is_registered(self.tick):
            bpy.app.timers.register(self.tick, first_interval=TICK_SECONDS)

    def cancel(self):
        if self.job is not None:
            self.job.cancel()
            self._report(None, "Cancelling…")

    def tick(self):
        """Timer callback: returns the seconds until the next call, or ``None`` when idle."""
        if self.job is None:
            return None
        for event in self.engine.events():
            if event.job != self.job.id:
                continue
            if event.kind == fe.EventType.PROGRESS:
                self._report(event.step / event.total, f"Step {event.step}/{event.total}")
            elif event.kind == fe.EventType.PREVIEW:
                self._preview(event)
        state = self.job.status().state
        if not state.finished:
            return TICK_SECONDS
        self._conclude(state)
        return None

    def _conclude(self, state):
        job, self.job = self.job, None
        with job:
            if state == fe.JobState.SUCCEEDED:
                # Written by the library in Blender's layout: float RGBA, bottom row first.
                with job.image(fe.PixelFormat.RGBA32F, bottom_up=True) as result:
                    size = result.width, result.height
                    pixels.write(self.target_image(*size), result.to_numpy())
                self._report(1.0, f"Done: {size[0]}×{size[1]}")
            elif state == fe.JobState.CANCELLED:
                self._report(0.0, "Cancelled")
            else:
                self._failed(job)
        self._redraw()

    def _failed(self, job):
        try:
            job.raise_if_failed()
        except fe.FluxError as e:
            self._report(0.0, f"Failed: {e.message}")
        if self.load_job is not None and self.load_job.wait() == fe.JobState.FAILED:
            self.model = None  # load again next time (the folder may have been fixed)
            self.load_job = None

    def _preview(self, event):
        pw, ph = event.preview_size
        image = self.target_image(pw, ph)
        w, h = image.size
        pixels.write(image, pixels.preview(event.preview_rgb, pw, ph, w, h))
        self._redraw()

    def target_image(self, width, height):
        """The image the job's pixels go to, made at this size if it does not exist."""
        image = bpy.data.images.get(self.image_name)
        if image is None:
            image = bpy.data.images.new(self.image_name, width, height, alpha=True)
        return image

    def _report(self, progress, status):
        scene = bpy.data.scenes.get(self.scene_name or "")
        if scene is None:
            return
        if progress is not None:
            scene.flux.progress = progress
        scene.flux.status = status

    @staticmethod
    def _redraw():
        for window in bpy.context.window_manager.windows:
            for area in window.screen.areas:
                if area.type == "IMAGE_EDITOR":
                    area.tag_redraw()

    def shutdown(self):
        """Cancels the job and closes the engine (joins its worker within one step)."""
        if bpy.app.timers.is_registered(self.tick):
            bpy.app.timers.unregister(self.tick)
        self.job = self.load_job = None
        if self.engine is not None:
            self.engine.close()
        self.engine = self.engine_key = self.model = None


session = Session()
