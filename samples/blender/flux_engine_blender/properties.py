"""Per-scene settings of the panel (``scene.flux``)."""

import bpy


class FluxLora(bpy.types.PropertyGroup):
    """One entry of the LoRA list: a file and its strength."""

    enabled: bpy.props.BoolProperty(
        name="Enabled", description="Apply this LoRA to the jobs the panel submits", default=True
    )
    filepath: bpy.props.StringProperty(
        name="LoRA File",
        description="A kohya, diffusers/PEFT, XLabs or BFL FLUX LoRA (.safetensors)",
        subtype="FILE_PATH",
    )
    strength: bpy.props.FloatProperty(
        name="Strength",
        description="How strongly the LoRA applies (1: as trained; negative inverts it)",
        default=1.0, soft_min=-2.0, soft_max=2.0, step=5,
    )


class FluxSettings(bpy.types.PropertyGroup):
    prompt: bpy.props.StringProperty(name="Prompt", default="a lighthouse at dusk, concept art")
    width: bpy.props.IntProperty(name="Width", default=1024, min=16, max=4096, step=16)
    height: bpy.props.IntProperty(name="Height", default=1024, min=16, max=4096, step=16)
    steps: bpy.props.IntProperty(
        name="Steps", description="0: the model's default (dev 28, schnell 4, Kontext 30)",
        default=0, min=0, max=200,
    )
    guidance: bpy.props.FloatProperty(
        name="Guidance", description="Distilled guidance (dev 3.5, Kontext 2.5)",
        default=3.5, min=0.0, max=20.0,
    )
    seed: bpy.props.IntProperty(name="Seed", default=0, min=0)
    t5_len: bpy.props.IntProperty(
        name="Prompt Tokens", description="T5 tokens (0: the model's default, dev 512)",
        default=0, min=0, max=512,
    )
    snap: bpy.props.BoolProperty(
        name="Kontext Sizes",
        description="Edit: resize the source to the closest resolution Kontext was trained at",
        default=True,
    )
    negative_prompt: bpy.props.StringProperty(
        name="Negative Prompt",
        description="What to steer away from (true CFG: each step runs the model twice); empty: off",
    )
    true_cfg: bpy.props.FloatProperty(
        name="True CFG", description="True CFG scale for the negative prompt (1: off)",
        default=4.0, min=1.0, soft_max=10.0,
    )
    mask: bpy.props.PointerProperty(
        type=bpy.types.Image, name="Mask",
        description="Fill: white repaints, black keeps (the image's size; needs a FLUX.1 Fill model)",
    )
    control: bpy.props.PointerProperty(
        type=bpy.types.Image, name="Control",
        description="A depth map or edge map for a FLUX.1 Depth or Canny model",
    )
    loras: bpy.props.CollectionProperty(type=FluxLora, name="LoRAs")
    lora_index: bpy.props.IntProperty(name="Active LoRA", default=0, min=0)
    # Written by the add-on on the main thread while a job runs.
    progress: bpy.props.FloatProperty(name="Progress", subtype="FACTOR", min=0.0, max=1.0)
    status: bpy.props.StringProperty(name="Status")
