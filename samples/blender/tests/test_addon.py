"""Runs inside headless Blender (see ffi/tests/hosts.rs):

    blender -b --factory-startup --python-exit-code 1 --python samples/blender/tests/test_addon.py

with BLENDER_USER_SCRIPTS pointing at a folder whose addons/ holds the packaged add-on, and
FLUX_TEST_MODEL / FLUX_TEST_EXPECTED set. Enables the add-on, generates with the tiny model,
edits that image and the same pixels in a linear float image, cancels a job, refuses bad input,
and disables the add-on. Timers do not run
in background mode, so the test calls the session's timer callback itself, as Blender would.
"""

import os
import sys
import time

import addon_utils
import bpy
import numpy as np

ADDON = "flux_engine_blender"


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

    addon_utils.disable(ADDON, default_set=True, handle_error=None)
    assert session.engine is None, "disabling the add-on closes the engine"
    print("blender add-on: PASS")


main()
