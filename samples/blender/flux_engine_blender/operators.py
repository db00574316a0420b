"""Generate, Edit (Kontext), Fill, Generate with a control image, Depth from Render and Cancel,
and the LoRA list's Add and Remove. Generate and Edit
only build a request and submit it; the work happens on the engine's worker thread and the
session's timer brings the result back on the main thread. The library checks every setting as
the request is built: bad input is reported before anything is submitted."""

import bpy

from . import depth, pixels, preferences
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
    0 keep the model's defaults), negative prompt and enabled LoRAs (a missing file or an
    infinite strength is refused here, before anything is submitted)."""
    request = fe.Request(
        settings.prompt,
        seed=settings.seed,
        steps=settings.steps or None,
        guidance=settings.guidance,
        t5_len=settings.t5_len or None,
        loras=enabled_loras(settings),
        **extra,
    )
    if settings.negative_prompt:
        request.set_negative_prompt(settings.negative_prompt, settings.true_cfg)
    return request


def _engine_image(image):
    """A Blender image as a ``flux_engine.Image`` (Blender's own layout; requests copy it)."""
    return fe.Image.from_numpy(pixels.read(image), bottom_up=True)


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


class _GeneratesAtPanelSize(_Submit):
    """Operators that make a new image of the panel's size into ``self.image``."""

    def _problem(self, settings):
        """Why the operator cannot run, or ``None``."""
        return None

    def _with_inputs(self, request, settings):
        """The request with the operator's own inputs added."""
        return request

    def execute(self, context):
        s = context.scene.flux
        problem = self._problem(s)
        if problem:
            self.report({"ERROR"}, problem)
            return {"CANCELLED"}

        def build():
            return self._with_inputs(_request(s, width=s.width, height=s.height), s)

        return self._start(context, build, self.image, (s.width, s.height))


class FLUX_OT_generate(_GeneratesAtPanelSize, bpy.types.Operator):
    """Generate an image from the prompt (runs in the background)"""

    bl_idname = "flux.generate"
    bl_label = "Generate"

    image: bpy.props.StringProperty(
        name="Image", description="Image to write the result into", default=RESULT_IMAGE
    )


class _EditsAnImage(_Submit):
    """Operators whose input is an image (the one named, or the Image Editor's) and whose
    result goes to "<image> (Flux <verb>)" at its size."""

    verb = ""

    def _source(self, context):
        if self.image:
            return bpy.data.images.get(self.image)
        space = getattr(context, "space_data", None)
        return space.image if space is not None and space.type == "IMAGE_EDITOR" else None

    def _problem(self, settings):
        """Why the operator cannot run beside a missing source, or ``None``."""
        return None

    def _with_inputs(self, settings, image):
        """A request for ``image`` (a ``flux_engine.Image``) with the operator's inputs."""
        raise NotImplementedError

    def execute(self, context):
        source, s = self._source(context), context.scene.flux
        if source is None or not source.size[0]:
            problem = f"No image to {self.verb}: open one in the Image Editor"
        else:
            problem = self._problem(s)
        if problem:
            self.report({"ERROR"}, problem)
            return {"CANCELLED"}

        def build():
            with _engine_image(source) as image:
                return self._with_inputs(s, image)

        name = f"{source.name} (Flux {self.verb})"
        return self._start(context, build, name, tuple(source.size))


class FLUX_OT_edit(_EditsAnImage, bpy.types.Operator):
    """Edit the active image with the prompt (FLUX.1 Kontext; runs in the background)"""

    bl_idname = "flux.edit"
    bl_label = "Edit Image"
    verb = "edit"

    image: bpy.props.StringProperty(
        name="Image", description="Image to edit (default: the Image Editor's image)"
    )

    def _with_inputs(self, settings, image):
        return _request(settings, snap=settings.snap).add_reference(image)


class FLUX_OT_fill(_EditsAnImage, bpy.types.Operator):
    """Repaint the masked part of the active image (FLUX.1 Fill model; runs in the background)"""

    bl_idname = "flux.fill"
    bl_label = "Fill Masked"
    verb = "fill"

    image: bpy.props.StringProperty(
        name="Image", description="Image to fill (default: the Image Editor's image)"
    )

    def _problem(self, settings):
        if settings.mask is None:
            return "Choose a mask image (white repaints)"
        return None

    def _with_inputs(self, settings, image):
        with _engine_image(settings.mask) as mask:
            return _request(settings).set_fill(image, mask)


class FLUX_OT_generate_control(_GeneratesAtPanelSize, bpy.types.Operator):
    """Generate following the control image's depth or edges (FLUX.1 Depth or Canny model)"""

    bl_idname = "flux.generate_control"
    bl_label = "Generate from Control"

    image: bpy.props.StringProperty(
        name="Image", description="Image to write the result into", default=RESULT_IMAGE
    )

    def _problem(self, settings):
        if settings.control is None:
            return "Choose a control image, or make one with Depth from Render"
        return None

    def _with_inputs(self, request, settings):
        with _engine_image(settings.control) as control:
            return request.set_control_image(control)


class FLUX_OT_depth_from_render(bpy.types.Operator):
    """Render the scene's depth at the panel's size into the "Flux Depth" image and use it as
    the control image (for a FLUX.1 Depth model)"""

    bl_idname = "flux.depth_from_render"
    bl_label = "Depth from Render"

    @classmethod
    def poll(cls, context):
        return context.scene.camera is not None

    def execute(self, context):
        s = context.scene.flux
        z = depth.render_depth(context.scene, s.width, s.height)
        image = bpy.data.images.get("Flux Depth") or bpy.data.images.new(
            "Flux Depth", s.width, s.height, alpha=True
        )
        pixels.write(image, depth.control_from_depth(z))
        s.control = image
        _show(context, image)
        return {"FINISHED"}


class FLUX_OT_lora_add(bpy.types.Operator):
    """Add a LoRA file (kohya, diffusers/PEFT, XLabs or BFL .safetensors) to the list"""

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
