"""Generate, Edit (Kontext) and Cancel, and the LoRA list's Add and Remove. Generate and Edit
only build a request and submit it; the work happens on the engine's worker thread and the
session's timer brings the result back on the main thread. The library checks every setting as
the request is built: bad input is reported before anything is submitted."""

import bpy

from . import pixels, preferences
from .session import fe, session

RESULT_IMAGE = "Flux Result"


def enabled_loras(settings):
    """``(absolute path, strength)`` of the LoRA list's enabled entries that name a file, in
    list order (``//`` paths are relative to the .blend file)."""
    return [
        (bpy.path.abspath(lora.filepath), lora.strength)
        for lora in settings.loras
        if lora.enabled and lora.filepath
    ]


def _request(settings, **extra):
    """A ``flux_engine.Request`` with the panel's prompt, sampling settings (steps and tokens at
    0 keep the model's defaults) and enabled LoRAs (a missing file or an infinite strength is
    refused here, before anything is submitted)."""
    return fe.Request(
        settings.prompt,
        seed=settings.seed,
        steps=settings.steps or None,
        guidance=settings.guidance,
        t5_len=settings.t5_len or None,
        loras=enabled_loras(settings),
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


class FLUX_OT_lora_add(bpy.types.Operator):
    """Add a LoRA file (kohya, diffusers/PEFT or XLabs .safetensors) to the list"""

    bl_idname = "flux.lora_add"
    bl_label = "Add LoRA"
    bl_options = {"REGISTER", "UNDO"}

    filepath: bpy.props.StringProperty(
        name="LoRA File", description="The LoRA's .safetensors file (may be set later)",
        subtype="FILE_PATH",
    )
    strength: bpy.props.FloatProperty(
        name="Strength", default=1.0, soft_min=-2.0, soft_max=2.0, step=5
    )
    filter_glob: bpy.props.StringProperty(default="*.safetensors", options={"HIDDEN"})

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        s = context.scene.flux
        lora = s.loras.add()
        lora.filepath = self.filepath
        lora.strength = self.strength
        s.lora_index = len(s.loras) - 1
        return {"FINISHED"}


class FLUX_OT_lora_remove(bpy.types.Operator):
    """Remove the selected LoRA from the list"""

    bl_idname = "flux.lora_remove"
    bl_label = "Remove LoRA"
    bl_options = {"REGISTER", "UNDO"}

    index: bpy.props.IntProperty(
        name="Index", description="The entry to remove (-1: the selected one)", default=-1
    )

    @classmethod
    def poll(cls, context):
        return len(context.scene.flux.loras) > 0

    def execute(self, context):
        s = context.scene.flux
        index = s.lora_index if self.index < 0 else self.index
        if not 0 <= index < len(s.loras):
            self.report({"ERROR"}, f"No LoRA entry {index}")
            return {"CANCELLED"}
        s.loras.remove(index)
        s.lora_index = max(0, min(s.lora_index, len(s.loras) - 1))
        return {"FINISHED"}


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
