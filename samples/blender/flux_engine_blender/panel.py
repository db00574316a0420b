"""The sidebar panel of the Image Editor (tab "Flux")."""

import bpy

from . import preferences
from .session import session


class FLUX_UL_loras(bpy.types.UIList):
    """The LoRA list: enable checkbox, file and strength per entry."""

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index):
        if self.layout_type == "GRID":
            layout.alignment = "CENTER"
            layout.prop(item, "enabled", text="")
            return
        row = layout.row(align=True)
        row.prop(item, "enabled", text="")
        body = row.split(factor=0.62, align=True)
        body.active = item.enabled
        body.prop(item, "filepath", text="")
        body.prop(item, "strength", text="", slider=True)


class FLUX_PT_panel(bpy.types.Panel):
    bl_label = "Flux Engine"
    bl_space_type = "IMAGE_EDITOR"
    bl_region_type = "UI"
    bl_category = "Flux"

    def draw(self, context):
        layout = self.layout
        s = context.scene.flux
        if not preferences.get(context).model_folder:
            layout.label(text="Set the model folder in the add-on preferences", icon="ERROR")
        layout.prop(s, "prompt", text="")
        row = layout.row(align=True)
        row.prop(s, "negative_prompt", text="", icon="REMOVE")
        row.prop(s, "true_cfg", text="CFG")
        col = layout.column(align=True)
        col.prop(s, "width")
        col.prop(s, "height")
        col = layout.column(align=True)
        col.prop(s, "steps")
        col.prop(s, "guidance")
        col.prop(s, "seed")
        col.prop(s, "t5_len")
        layout.prop(s, "snap")
        layout.label(text="LoRAs")
        row = layout.row()
        row.template_list("FLUX_UL_loras", "", s, "loras", s, "lora_index", rows=2)
        col = row.column(align=True)
        col.operator("flux.lora_add", icon="ADD", text="")
        col.operator("flux.lora_remove", icon="REMOVE", text="")
        row = layout.row(align=True)
        row.operator("flux.generate", icon="IMAGE_DATA")
        row.operator("flux.edit", icon="BRUSH_DATA")
        box = layout.box()
        box.label(text="FLUX.1 Tools")
        box.template_ID(s, "mask", open="image.open")
        box.operator("flux.fill", icon="MOD_MASK")
        box.template_ID(s, "control", open="image.open")
        row = box.row(align=True)
        row.operator("flux.depth_from_render", icon="RENDER_STILL")
        row.operator("flux.generate_control", icon="IMAGE_DATA")
        if session.busy:
            layout.operator("flux.cancel", icon="CANCEL")
        if hasattr(layout, "progress"):  # Blender 4.0+
            layout.progress(factor=s.progress, text=s.status or "Idle")
        else:
            layout.prop(s, "progress", slider=True, text=s.status or "Progress")
