"""Runs inside headless Blender (see ffi/tests/hosts.rs):

    blender -b --factory-startup --python-exit-code 1 --python samples/blender/tests/test_addon.py

with BLENDER_USER_SCRIPTS pointing at a folder whose addons/ holds the packaged add-on, and
FLUX_TEST_MODEL / FLUX_TEST_EXPECTED set. Enables the add-on, generates with the tiny model,
edits that image and the same pixels in a linear float image, cancels a job, refuses bad input,
applies LoRAs from the panel's list (tests/fixtures/flux-lora, or FLUX_TEST_LORAS), runs true CFG
from the negative prompt, renders the scene's depth into a control image, fills a masked image on
a Fill model (tests/fixtures/flux-tools), draws the panel, and disables the add-on. Timers do not run
in background mode, so the test calls the session's timer callback itself, as Blender would.
"""

import os
import pathlib
import shutil
import sys
import tempfile
import time

import addon_utils
import bpy
import numpy as np

ADDON = "flux_engine_blender"
FIXTURES = pathlib.Path(__file__).resolve().parents[3] / "tests" / "fixtures"
LORAS = pathlib.Path(os.environ.get("FLUX_TEST_LORAS") or FIXTURES / "flux-lora")


def drive(session, seconds=120):
    """Calls the timer callback until it stops rescheduling itself."""
    deadline = time.monotonic() + seconds
    while session.tick() is not None:
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.02)


def rgba_top_down(image):
    w, h = image.size
    buf = np.empty(w * h * 4, dtype=np.float32)
    image.pixels.foreach_get(buf)
    return np.rint(buf.reshape(h, w, 4)[::-1] * 255).astype(np.uint8)


def generate(session, name):
    """Runs the Generate operator into image ``name`` and returns its RGB8 pixels."""
    assert bpy.ops.flux.generate(image=name) == {"FINISHED"}
    drive(session)
    status = bpy.context.scene.flux.status
    assert status.startswith("Done"), status
    return rgba_top_down(bpy.data.images[name])[..., :3]


class Layout:
    """Stands in for a ``UILayout`` (panels are not drawn in background mode): records what is
    drawn and checks that each property and operator it names exists."""

    def __init__(self, log):
        self.log = log

    def __getattr__(self, name):
        def call(*args, **kwargs):
            if name == "prop":
                data, prop = args[0], args[1]
                assert prop in data.bl_rna.properties, f"no property {prop!r} on {data}"
                self.log.append(("prop", prop))
            elif name == "operator":
                category, op = args[0].split(".")
                assert hasattr(getattr(bpy.ops, category), op), args[0]
                self.log.append(("operator", args[0]))
            elif name == "template_list":
                assert args[0] in dir(bpy.types), f"UIList {args[0]} is not registered"
                assert args[3] in args[2].bl_rna.properties and args[5] in args[4].bl_rna.properties
                self.log.append(("list", args[0], args[3]))
            return Layout(self.log)

        return call


def test_loras(session, plain):
    """The LoRA list: an enabled entry changes every job's image, disabling it gives back the
    plain pixels exactly; strengths, several entries, bad files, removal."""
    s = bpy.context.scene.flux
    kohya = str(LORAS / "lora_a_kohya.safetensors")
    single = str(LORAS / "lora_d_kohya_single.safetensors")
    assert os.path.isfile(kohya), kohya
    assert bpy.ops.flux.lora_remove.poll() is False, "nothing to remove"
    assert bpy.ops.flux.lora_add(filepath=kohya) == {"FINISHED"}
    assert len(s.loras) == 1 and s.lora_index == 0
    lora = s.loras[0]
    assert lora.enabled and lora.strength == 1.0 and lora.filepath == kohya, "the defaults"
    assert lora.bl_rna.properties["filepath"].subtype == "FILE_PATH"
    strength = lora.bl_rna.properties["strength"]
    assert (strength.soft_min, strength.soft_max) == (-2.0, 2.0)

    styled = generate(session, "Flux LoRA")
    assert not np.array_equal(styled, plain), "the LoRA changes the image"
    lora.enabled = False
    assert np.array_equal(generate(session, "Flux LoRA Off"), plain), "disabled: the original"
    lora.enabled = True
    lora.strength = 0.5
    half = generate(session, "Flux LoRA Half")
    assert not np.array_equal(half, styled) and not np.array_equal(half, plain), "the strength"
    lora.strength = 1.0
    assert np.array_equal(generate(session, "Flux LoRA Again"), styled), "switching back"

    # An entry without a file is skipped; a second LoRA applies together with the first.
    assert bpy.ops.flux.lora_add() == {"FINISHED"} and len(s.loras) == 2
    assert np.array_equal(generate(session, "Flux LoRA Empty"), styled)
    s.loras[1].filepath, s.loras[1].strength = single, 0.7
    both = generate(session, "Flux LoRA Both")
    assert not np.array_equal(both, styled) and not np.array_equal(both, plain)

    # Edits get the LoRAs too.
    s.prompt, s.steps, s.t5_len, s.snap = "make it night", 2, 16, False
    s.loras[1].enabled = False
    edit_name = "Flux Test (Flux edit)"
    before = rgba_top_down(bpy.data.images[edit_name])
    assert bpy.ops.flux.edit(image="Flux Test") == {"FINISHED"}
    drive(session)
    assert s.status.startswith("Done"), s.status
    assert not np.array_equal(rgba_top_down(bpy.data.images[edit_name]), before)
    s.prompt, s.steps, s.t5_len = "a red lighthouse at dusk", 3, 32

    # The panel draws the list: a checkbox, the file and the strength per entry.
    panel = sys.modules[f"{ADDON}.panel"]
    log = []
    panel.FLUX_PT_panel.draw(type("Panel", (), {"layout": Layout(log)})(), bpy.context)
    assert ("list", "FLUX_UL_loras", "loras") in log, log
    assert {("operator", "flux.lora_add"), ("operator", "flux.lora_remove")} <= set(log), log
    item_log = []
    for layout_type in ["DEFAULT", "GRID"]:
        fake = type("List", (), {"layout_type": layout_type})()
        panel.FLUX_UL_loras.draw_item(
            fake, bpy.context, Layout(item_log), s, lora, 0, s, "lora_index", 0
        )
    assert [p for _, p in item_log[:3]] == ["enabled", "filepath", "strength"], item_log

    # A missing file is refused before anything is submitted; a file that is not a LoRA of the
    # model fails its job, named in the status; the model stays as it was.
    lora.filepath = str(LORAS / "no such lora.safetensors")
    try:
        bpy.ops.flux.generate(image="Flux LoRA Missing")
        raise AssertionError("a missing LoRA file was accepted")
    except RuntimeError as e:
        assert "does not exist" in str(e) and "no such lora" in str(e), e
    assert not session.busy
    lora.filepath = os.path.join(os.environ["FLUX_TEST_MODEL"], "flux1-dev.safetensors")
    assert bpy.ops.flux.generate(image="Flux LoRA Bad") == {"FINISHED"}
    drive(session)
    assert s.status.startswith("Failed") and "flux1-dev.safetensors" in s.status, s.status

    # Removing entries: the selected one, then by index.
    s.lora_index = 1
    assert bpy.ops.flux.lora_remove() == {"FINISHED"}
    assert [l.filepath.endswith("flux1-dev.safetensors") for l in s.loras] == [True]
    assert bpy.ops.flux.lora_remove(index=0) == {"FINISHED"} and len(s.loras) == 0
    assert np.array_equal(generate(session, "Flux No LoRA"), plain), "the plain model again"


def test_tools(session, plain):
    """True CFG from the negative prompt; Depth from Render (the default cube nearer than the
    background, the scene's settings restored); a control job on the plain model fails with the
    library's sentence; Fill on a Fill model folder equals the library's output."""
    s, scene = bpy.context.scene.flux, bpy.context.scene
    s.negative_prompt, s.true_cfg = "fog", 1.0
    assert np.array_equal(generate(session, "Flux CFG Off"), plain), "true CFG 1: off"
    s.true_cfg = 4.0
    assert not np.array_equal(generate(session, "Flux CFG"), plain), "true CFG 4 changes it"
    s.negative_prompt = ""

    engine, use_nodes = scene.render.engine, scene.use_nodes
    assert bpy.ops.flux.depth_from_render() == {"FINISHED"}
    control = bpy.data.images["Flux Depth"]
    assert s.control == control and tuple(control.size) == (64, 48)
    grey = rgba_top_down(control)[..., 0]
    assert grey.max() == 255 and grey.min() == 0, (grey.min(), grey.max())
    assert 0.02 < (grey > 0).mean() < 0.9, "the cube covers part of the frame"
    assert (scene.render.engine, scene.use_nodes) == (engine, use_nodes), "settings restored"
    assert bpy.ops.flux.generate_control(image="Flux Control") == {"FINISHED"}
    drive(session)
    assert "not a FLUX.1 control model" in s.status, s.status

    folder = pathlib.Path(tempfile.mkdtemp(prefix="flux-fill-"))
    shutil.copytree(os.environ["FLUX_TEST_MODEL"], folder / "model")
    fill_weights = FIXTURES / "flux-tools" / "flux_tiny_fill.weights.safetensors"
    shutil.copyfile(fill_weights, folder / "model" / "flux1-dev.safetensors")
    bpy.context.preferences.addons[ADDON].preferences.model_folder = str(folder / "model")
    mask = bpy.data.images.new("Flux Mask", 64, 48, alpha=True)
    white = np.zeros((48, 64, 4), dtype=np.float32)
    white[10:30, 8:40] = 1.0
    mask.pixels.foreach_set(white.ravel())
    s.mask = mask
    assert bpy.ops.flux.fill(image="Flux Test") == {"FINISHED"}
    drive(session)
    assert s.status.startswith("Done"), s.status
    filled = rgba_top_down(bpy.data.images["Flux Test (Flux fill)"])[..., :3]

    fe = sys.modules[f"{ADDON}.session"].fe
    read = sys.modules[f"{ADDON}.pixels"].read
    with fe.Engine() as e, fe.Request(s.prompt, seed=s.seed, steps=s.steps, guidance=s.guidance,
                                      t5_len=s.t5_len) as request:
        assert e.load_model(folder / "model").wait(timeout=120) == fe.JobState.SUCCEEDED
        image = fe.Image.from_numpy(read(bpy.data.images["Flux Test"]), bottom_up=True)
        mask_image = fe.Image.from_numpy(read(mask), bottom_up=True)
        with image, mask_image, e.submit(request.set_fill(image, mask_image)) as job:
            want = np.array(job.result(fe.PixelFormat.RGB8, timeout=120).to_numpy())
    assert np.array_equal(filled, want.reshape(48, 64, 3)), "Fill equals the library's output"

    assert bpy.ops.flux.generate(image="Flux No Mask") == {"FINISHED"}
    drive(session)
    assert "fill" in s.status and "mask" in s.status, s.status
    bpy.context.preferences.addons[ADDON].preferences.model_folder = os.environ["FLUX_TEST_MODEL"]
    shutil.rmtree(folder, ignore_errors=True)


def main():
    addon_utils.enable(ADDON, default_set=True, handle_error=None)
    assert ADDON in bpy.context.preferences.addons, "the add-on did not enable"
    session = sys.modules[f"{ADDON}.session"].session
    prefs = bpy.context.preferences.addons[ADDON].preferences
    prefs.model_folder = os.environ["FLUX_TEST_MODEL"]
    prefs.preview_every = 1
    s = bpy.context.scene.flux
    s.prompt, s.width, s.height, s.seed, s.steps, s.t5_len = (
        "a red lighthouse at dusk", 64, 48, 7, 3, 32,
    )

    # Generate: the image's pixels equal the library's output for the same seed.
    assert bpy.ops.flux.generate(image="Flux Test") == {"FINISHED"}
    assert session.busy and bpy.ops.flux.generate.poll() is False, "one job at a time"
    drive(session)
    image = bpy.data.images["Flux Test"]
    assert tuple(image.size) == (64, 48)
    got = rgba_top_down(image)
    expected = np.frombuffer(open(os.environ["FLUX_TEST_EXPECTED"], "rb").read(), np.uint8)
    assert np.array_equal(got[..., :3], expected.reshape(48, 64, 3)), "pixels differ from the library"
    assert (got[..., 3] == 255).all()
    assert s.progress == 1.0 and s.status.startswith("Done"), s.status

    # Edit (Kontext) that image into a new one.
    s.prompt, s.steps, s.t5_len, s.snap = "make it night", 2, 16, False
    assert bpy.ops.flux.edit(image="Flux Test") == {"FINISHED"}
    drive(session)
    edited = bpy.data.images["Flux Test (Flux edit)"]
    assert tuple(edited.size) == (64, 48) and s.status.startswith("Done"), s.status
    assert not np.array_equal(rgba_top_down(edited), got)

    # The same pixels in a linear float image are made sRGB first: the same edit.
    srgb = expected.reshape(48, 64, 3)[::-1] / 255.0
    linear = np.ones((48, 64, 4), dtype=np.float32)
    linear[..., :3] = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    source = bpy.data.images.new("Flux Linear", 64, 48, alpha=True, float_buffer=True)
    source.pixels.foreach_set(linear.ravel())
    assert source.is_float
    assert bpy.ops.flux.edit(image="Flux Linear") == {"FINISHED"}
    drive(session)
    edited_linear = rgba_top_down(bpy.data.images["Flux Linear (Flux edit)"])
    assert np.array_equal(edited_linear, rgba_top_down(edited)), "float sources are converted"

    # Cancel a long job: the status says so and the engine stays usable.
    s.width, s.height, s.steps = 512, 512, 28
    assert bpy.ops.flux.generate(image="Flux Cancelled") == {"FINISHED"}
    while session.engine.poll_event() is None or session.job.status().state != 1:
        time.sleep(0.01)
    assert bpy.ops.flux.cancel() == {"FINISHED"}
    drive(session, 60)
    assert s.status == "Cancelled", s.status

    # Bad input: reported, nothing submitted, the next job still works.
    s.width = 100
    try:
        bpy.ops.flux.generate(image="Flux Bad")
        raise AssertionError("a width of 100 was accepted")
    except RuntimeError as e:
        assert "16" in str(e), e
    assert not session.busy
    s.width, s.height, s.steps, s.t5_len, s.prompt = 64, 48, 3, 32, "a red lighthouse at dusk"
    bpy.ops.flux.generate(image="Flux Again")
    drive(session)
    assert np.array_equal(rgba_top_down(bpy.data.images["Flux Again"])[..., :3], got[..., :3])

    test_loras(session, got[..., :3])
    test_tools(session, got[..., :3])

    addon_utils.disable(ADDON, default_set=True, handle_error=None)
    assert session.engine is None, "disabling the add-on closes the engine"
    print("blender add-on: PASS")


main()
