"""Add-on preferences: where the model is and how the engine runs."""

import bpy


class FluxPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    model_folder: bpy.props.StringProperty(
        name="Model Folder",
        description="A FLUX.1 model: a diffusers folder or BFL/ComfyUI single files",
        subtype="DIR_PATH",
    )
    device: bpy.props.EnumProperty(
        name="Device",
        items=[("CPU", "CPU", "Compute on the CPU"), ("CUDA", "CUDA", "Compute on NVIDIA GPU 0")],
        default="CPU",
    )
    preview_every: bpy.props.IntProperty(
        name="Preview Every",
        description="Refresh the live preview every N steps (0: no previews)",
        default=4,
        min=0,
        max=50,
    )

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "model_folder")
        row = layout.row()
        row.prop(self, "device")
        row.prop(self, "preview_every")


def get(context):
    """This add-on's preferences."""
    return context.preferences.addons[__package__].preferences
