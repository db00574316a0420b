"""Generate, Edit (Kontext) and Cancel. Each only builds a request and submits it, or cancels;
the work happens on the engine's worker thread and the session's timer brings the result back
on the main thread. The library checks every setting as the request is built: bad input is
reported before anything is submitted."""

import bpy

from . import pixels, preferences
from .session import fe, session

RESULT_IMAGE = "Flux Result"


def _request(settings, **extra):
    """A ``flux_engine.Request`` with the panel's prompt and sampling settings (steps and
    tokens at 0 keep the model's defaults)."""
    return fe.Request(
        settings.prompt,
        seed=settings.seed,
        steps=settings.steps or None,
        guidance=settings.guidance,
        t5_len=settings.t5_len or None,
        **extra,
    )


def _show(context, image):
    """Shows ``image`` in the Image Editor the operator was run from, if any."""
    space = getattr(context, "space_data", None)
    if space is not None and space.type == "IMAGE_EDITOR":
        space.image = image


class _Submit:
    @classmethod
    def poll(cls, context):
        return not session.busy and bool(preferences.get(context).model_folder)

    def _start(self, context, build, image_name, size):
        """Submits the request ``build()`` makes; the result goes to ``image_name``."""
        try:
            with build() as request:
                session.start(context, request, image_name)
        except (fe.FluxError, OSError, ValueError, TypeError) as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        _show(context, session.target_image(*size))
        return {"FINISHED"}


class FLUX_OT_generate(_Submit, bpy.types.Operator):
    """Generate an image from the prompt (runs in the background)"""

    bl_idname = "flux.generate"
    bl_label = "Generate"

    image: bpy.props.StringProperty(
        name="Image", description="Image to write the result into", default=RESULT_IMAGE
    )

    def execute(self, context):
        s = context.scene.flux

        def build():
            return _request(s, width=s.width, height=s.height)

        return self._start(context, build, self.image, (s.width, s.height))


class FLUX_OT_edit(_Submit, bpy.types.Operator):
    """Edit the active image with the prompt (FLUX.1 Kontext; runs in the background)"""

    bl_idname = "flux.edit"
    bl_label = "Edit Image"

    image: bpy.props.StringProperty(
        name="Image", description="Image to edit (default: the Image Editor's image)"
    )

    def _source(self, context):
        if self.image:
            return bpy.data.images.get(self.image)
        space = getattr(context, "space_data", None)
        return space.image if space is not None and space.type == "IMAGE_EDITOR" else None

    def execute(self, context):
        source = self._source(context)
        if source is None or not source.size[0]:
            self.report({"ERROR"}, "No image to edit: open one in the Image Editor")
            return {"CANCELLED"}
        s = context.scene.flux

        def build():
            request = _request(s, snap=s.snap)
            # Blender's own layout; the request copies the pixels now.
            with fe.Image.from_numpy(pixels.read(source), bottom_up=True) as image:
                return request.add_reference(image)

        return self._start(context, build, f"{source.name} (Flux edit)", tuple(source.size))


class FLUX_OT_cancel(bpy.types.Operator):
    """Cancel the running job"""

    bl_idname = "flux.cancel"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context):
        return session.busy

    def execute(self, context):
        session.cancel()
        return {"FINISHED"}
