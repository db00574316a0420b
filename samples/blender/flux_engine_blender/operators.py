"""Generate, Edit (Kontext) and Cancel. Each only submits or cancels; the work happens on the
engine's worker thread and the session's timer brings the result back on the main thread."""

import bpy

from . import pixels, preferences
from .session import fe, session

RESULT_IMAGE = "Flux Result"


def _sampling(settings):
    return dict(
        seed=settings.seed,
        steps=settings.steps or None,
        guidance=settings.guidance,
        t5_len=settings.t5_len or None,
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

    def _start(self, context, submit, image_name, size):
        try:
            session.start(context, submit, image_name)
        except (fe.FluxError, OSError, ValueError) as e:
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

        def submit(engine):
            return engine.text_to_image(
                s.prompt, width=s.width, height=s.height, **_sampling(s)
            )

        return self._start(context, submit, self.image, (s.width, s.height))


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
        rgba = pixels.read_rgba8(source)

        def submit(engine):
            return engine.edit(s.prompt, rgba, snap=s.snap, **_sampling(s))

        return self._start(context, submit, f"{source.name} (Flux edit)", tuple(source.size))


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
