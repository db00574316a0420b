"""The scene's depth, rendered, as a FLUX.1 Depth control image: Blender has the depth buffer
the model wants, so no depth estimator runs. Main thread only."""

import glob
import os
import shutil
import tempfile

import bpy
import numpy as np

#: Depth Blender writes where a ray hits nothing.
BACKGROUND = 1e9


def render_depth(scene, width, height):
    """Renders ``scene``'s camera view at ``width`` × ``height`` with Cycles at one sample and
    returns its Z pass, ``(height, width)`` float32, bottom row first (background ≥ 1e9). The
    scene's settings and compositor are as they were afterwards."""
    render, layer = scene.render, bpy.context.view_layer
    saved = dict(
        engine=render.engine, x=render.resolution_x, y=render.resolution_y,
        percent=render.resolution_percentage, use_nodes=scene.use_nodes, z=layer.use_pass_z,
        samples=scene.cycles.samples, denoise=scene.cycles.use_denoising,
    )
    folder = tempfile.mkdtemp(prefix="flux-depth-")
    scene.use_nodes = True
    tree = scene.node_tree
    layers = tree.nodes.new("CompositorNodeRLayers")
    output = tree.nodes.new("CompositorNodeOutputFile")
    try:
        render.engine = "CYCLES"
        scene.cycles.samples, scene.cycles.use_denoising = 1, False
        render.resolution_x, render.resolution_y, render.resolution_percentage = width, height, 100
        layer.use_pass_z = True
        layers.layer = layer.name
        output.base_path = folder
        output.format.file_format, output.format.color_depth = "OPEN_EXR", "32"
        tree.links.new(layers.outputs["Depth"], output.inputs[0])
        bpy.ops.render.render(write_still=False)
        (path,) = glob.glob(os.path.join(folder, "*.exr"))
        image = bpy.data.images.load(path)
        try:
            buf = np.empty(width * height * 4, dtype=np.float32)
            image.pixels.foreach_get(buf)
        finally:
            bpy.data.images.remove(image)
        return buf.reshape(height, width, 4)[..., 0].copy()
    finally:
        tree.nodes.remove(layers)
        tree.nodes.remove(output)
        render.engine = saved["engine"]
        render.resolution_x, render.resolution_y = saved["x"], saved["y"]
        render.resolution_percentage = saved["percent"]
        scene.use_nodes, layer.use_pass_z = saved["use_nodes"], saved["z"]
        scene.cycles.samples, scene.cycles.use_denoising = saved["samples"], saved["denoise"]
        shutil.rmtree(folder, ignore_errors=True)


def control_from_depth(z):
    """A depth control image, ``(height, width, 4)`` float32 RGBA in [0, 1], from a Z pass: grey
    inverse depth normalised over the frame (nearest white, background black), as the
    Depth-Anything maps FLUX.1 Depth was trained on."""
    hit = z < BACKGROUND
    inverse = np.where(hit, 1.0 / np.maximum(z, 1e-6), 0.0)
    low, high = inverse.min(), inverse.max()
    grey = (inverse - low) / (high - low) if high > low else np.zeros_like(inverse)
    rgba = np.ones(z.shape + (4,), dtype=np.float32)
    rgba[..., :3] = grey[..., None]
    return rgba
