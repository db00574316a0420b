"""Flux Engine for Blender: FLUX.1 text-to-image, Kontext editing, Fill (a mask image) and
Depth/Canny (a control image, or the scene's rendered depth) in the Image Editor, with a negative
prompt (true CFG) and a list of LoRAs applied to every job.

Generation runs on the engine's own worker thread (inside libflux_engine); Blender's main thread
only submits jobs and, from a ``bpy.app.timers`` callback, polls their events and writes pixels
into images. No ``bpy`` call is ever made from another thread.
"""

bl_info = {
    "name": "Flux Engine",
    "author": "Flux Engine SDK",
    "version": (0, 1, 0),
    "blender": (3, 4, 0),
    "location": "Image Editor > Sidebar > Flux",
    "description": "Generate and edit images with FLUX.1 (text-to-image, Kontext, Fill, Depth, LoRAs) on your machine",
    "category": "Image",
}

import bpy

from . import operators, panel, preferences, properties
from .session import session

_CLASSES = (
    preferences.FluxPreferences,
    properties.FluxLora,
    properties.FluxSettings,
    operators.FLUX_OT_generate,
    operators.FLUX_OT_edit,
    operators.FLUX_OT_fill,
    operators.FLUX_OT_generate_control,
    operators.FLUX_OT_depth_from_render,
    operators.FLUX_OT_cancel,
    operators.FLUX_OT_lora_add,
    operators.FLUX_OT_lora_remove,
    panel.FLUX_UL_loras,
    panel.FLUX_PT_panel,
)


def register():
    for cls in _CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.flux = bpy.props.PointerProperty(type=properties.FluxSettings)


def unregister():
    session.shutdown()
    del bpy.types.Scene.flux
    for cls in reversed(_CLASSES):
        bpy.utils.unregister_class(cls)
