"""The FLUX.1 tools and true CFG from Python: a Fill model made from the tiny model folder with
the Fill fixture's transformer takes an image and a mask (a numpy array), the mask changes the
result, a job without one fails with the library's sentence; true CFG on the plain model is off
at scale 1 and changes the image above it; bad scales and masks are refused as they are set;
Redux images change the result when the tiny SigLIP and projection sit beside the model."""

import pathlib
import shutil

import numpy as np
import pytest
from conftest import REFERENCE

import flux_engine as fe

TOOLS = pathlib.Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "flux-tools"


def pixels(engine, request):
    with engine.submit(request) as job:
        return bytes(job.result(fe.PixelFormat.RGB8, timeout=120).data)


def error_of(fn, *args):
    with pytest.raises(fe.FluxError) as err:
        fn(*args)
    return err.value


def test_true_cfg_is_off_at_scale_one_and_changes_the_image_above(engine, expected_rgb):
    with fe.Request(**REFERENCE) as request:
        assert request.set_negative_prompt("fog", 1.0) is request, "setters chain"
        assert pixels(engine, request) == expected_rgb, "scale 1: true CFG off"
        guided = pixels(engine, request.set_negative_prompt("fog", 4.0))
        assert guided != expected_rgb
        for bad in [float("nan"), 0.5, -1.0]:
            err = error_of(request.set_negative_prompt, "fog", bad)
            assert err.code == fe.Result.INVALID_ARGUMENT and "scale" in err.message, err
        assert pixels(engine, request) == guided, "a refused scale leaves the request as it was"
        with pytest.raises(TypeError):
            request.set_negative_prompt("fog", "4")


def test_a_fill_model_repaints_the_masked_region(model_dir, tmp_path):
    fill_dir = tmp_path / "fill"
    shutil.copytree(model_dir, fill_dir)
    (transformer,) = fill_dir.glob("flux1-*.safetensors")
    shutil.copyfile(TOOLS / "flux_tiny_fill.weights.safetensors", transformer)
    image = (np.arange(48 * 64 * 3) * 7 % 251).astype(np.uint8).reshape(48, 64, 3)
    mask = np.zeros((48, 64), np.uint8)
    mask[10:30, 5:40] = 255
    with fe.Engine() as engine:
        assert engine.load_model(fill_dir).wait(timeout=120) == fe.JobState.SUCCEEDED
        with fe.Request("a paper cup", seed=1, steps=2, t5_len=16) as request:
            filled = pixels(engine, request.set_fill(image, mask))
            assert len(filled) == 64 * 48 * 3, "the image's size"
            assert pixels(engine, request.set_fill(image, 255 - mask)) != filled, "the mask counts"
            err = error_of(request.set_fill, image, mask[:, :32])
            assert err.code == fe.Result.INVALID_ARGUMENT and "same size" in err.message, err
            request.clear_images()
            with engine.submit(request) as job:
                err = error_of(job.result, fe.PixelFormat.RGB8, 120)
            assert "fill" in err.message and "mask" in err.message, err
            assert pixels(engine, request.set_fill(image, mask)) == filled, "the engine goes on"


def test_redux_images_need_their_files_and_change_the_image(engine, model_dir, tmp_path):
    image = (np.arange(24 * 40 * 3) * 5 % 253).astype(np.uint8).reshape(24, 40, 3)
    with fe.Request("", width=32, height=32, seed=3, steps=2, t5_len=16) as request:
        request.add_redux_image(image)
        with engine.submit(request) as job:
            err = error_of(job.result, fe.PixelFormat.RGB8, 120)
        assert "Redux" in err.message, err
        redux_dir = tmp_path / "redux"
        shutil.copytree(model_dir, redux_dir)
        shutil.copytree(TOOLS / "siglip_tiny", redux_dir / "siglip_tiny")
        shutil.copyfile(TOOLS / "redux_tiny.weights.safetensors",
                        redux_dir / "flux1-redux-dev.safetensors")
        with fe.Engine() as e:
            assert e.load_model(redux_dir).wait(timeout=120) == fe.JobState.SUCCEEDED
            varied = pixels(e, request)
            assert varied == pixels(e, request), "deterministic"
            assert pixels(e, request.clear_images()) != varied, "the image tokens count"
