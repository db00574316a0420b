"""Bad input raises FluxError with the library's sentence (or TypeError/ValueError where Python
cannot express the call) and loses nothing."""

import numpy as np
import pytest
from conftest import REFERENCE

import flux_engine as fe


def error_of(fn, *args, **kwargs):
    with pytest.raises(fe.FluxError) as err:
        fn(*args, **kwargs)
    assert err.value.message, "every error carries the library's sentence"
    return err.value


def test_sizes_that_are_not_multiples_of_16_are_refused(engine):
    err = error_of(engine.text_to_image, "x", width=100, height=64)
    assert err.code == fe.Result.INVALID_ARGUMENT and "16" in err.message
    err = error_of(engine.text_to_image, "x", width=1 << 20, height=64)
    assert err.code == fe.Result.INVALID_ARGUMENT
    with engine.text_to_image(**REFERENCE) as job:
        assert job.wait(timeout=120) == fe.JobState.SUCCEEDED, "the engine still works"


@pytest.mark.parametrize(
    "setter, args, named",
    [
        ("set_steps", (0,), "steps"),
        ("set_steps", (1001,), "steps"),
        ("set_guidance", (float("nan"),), "guidance"),
        ("set_guidance", (-1.0,), "guidance"),
        ("set_t5_length", (1,), "T5 length"),
        ("set_size", (0, 16), "size"),
        ("set_init_image", (np.zeros((16, 16, 3), np.uint8), 0.0), "strength"),
        ("set_init_image", (np.zeros((16, 16, 3), np.uint8), 1.5), "strength"),
    ],
)
def test_each_setting_is_checked_by_the_library(setter, args, named):
    with fe.Request() as request:
        err = error_of(getattr(request, setter), *args)
        assert err.code == fe.Result.INVALID_ARGUMENT and named in err.message, err


def test_requests_need_a_prompt_and_one_kind_of_images(engine):
    image = np.zeros((16, 16, 3), np.uint8)
    with fe.Request() as request:
        err = error_of(engine.submit, request)
        assert err.code == fe.Result.INVALID_ARGUMENT and "prompt" in err.message
        request.add_reference(image)
        assert "init image" in error_of(request.set_init_image, image, 0.5).message
        request.clear_images().set_init_image(image, 0.5)
        assert "reference" in error_of(request.add_reference, image).message


def test_wrong_types_are_refused_before_the_call(engine):
    with pytest.raises(TypeError):
        engine.text_to_image(b"bytes are not a prompt")
    with pytest.raises(ValueError):
        engine.text_to_image("a NUL\0inside")
    with pytest.raises(TypeError):
        engine.text_to_image("x", width=64)
    with pytest.raises(TypeError):
        engine.text_to_image("x", steps=2.5)
    with pytest.raises(OverflowError):
        engine.text_to_image("x", seed=-1)
    with pytest.raises(TypeError):
        engine.edit("x", "not an image")
    with pytest.raises(ValueError):
        engine.edit("x", np.zeros((16, 16, 3), dtype=np.float64))
    with pytest.raises(ValueError):
        engine.edit("x", np.zeros((16, 16, 3), dtype=np.float32))
    with pytest.raises(ValueError):
        fe.Image.from_numpy(np.zeros((16, 16, 3), np.uint8), fe.PixelFormat.BGRA8)
    with pytest.raises(ValueError):
        fe.Image(4, 4, 9)


def test_images_are_checked_by_the_library(engine):
    short = error_of(fe.Image, 4, 4, fe.PixelFormat.RGB8, b"short")
    assert short.code == fe.Result.BUFFER_TOO_SMALL and "48" in short.message
    assert "empty" in error_of(fe.Image, 0, 4).message
    assert "stride" in error_of(fe.Image, 4, 4, row_pitch=15).message
    assert error_of(fe.Image, 20000, 1).code == fe.Result.INVALID_ARGUMENT
    # GPU images need a CUDA engine; this one computes on the CPU.
    assert error_of(engine.device_uuid).code == fe.Result.UNSUPPORTED
    assert error_of(fe.Image.from_cuda, engine, 16, 16, 1 << 20).code == fe.Result.UNSUPPORTED
    memory = fe.ExternalMemory(handle=3, size=1024, device_uuid=b"\x01" * 16)
    timeline = fe.Semaphore(4, fe.SemaphoreType.TIMELINE_FD)
    err = error_of(fe.Image.import_memory, engine, 16, 16, memory, semaphore=timeline)
    assert err.code == fe.Result.UNSUPPORTED
    err = error_of(fe.Image.from_cuda, engine, 16, 16, 1 << 20, fe.PixelFormat.RGB8)
    assert err.code == fe.Result.INVALID_ARGUMENT and "RGBA16F" in err.message
    with pytest.raises(ValueError):
        fe.Image.import_memory(engine, 16, 16, fe.ExternalMemory(3, 1024, device_uuid=b"short"))


def test_edit_needs_one_to_four_images(engine):
    image = fe.Image(16, 16, fe.PixelFormat.RGB8, bytes(16 * 16 * 3))
    with pytest.raises(ValueError):
        engine.edit("x", [])
    err = error_of(engine.edit, "x", [image] * 5)
    assert err.code == fe.Result.INVALID_ARGUMENT and "4" in err.message


def test_missing_and_corrupt_models(tmp_path, model_dir):
    with fe.Engine() as engine:
        err = error_of(engine.load_model, tmp_path / "nowhere")
        assert err.code in (fe.Result.IO, fe.Result.UNKNOWN_LAYOUT)
        with pytest.raises(ValueError):
            engine.load_model(model_dir, kontext=7)
        broken = tmp_path / "broken"
        broken.mkdir()
        for f in model_dir.iterdir():
            target = broken / f.name
            if f.is_dir():
                target.symlink_to(f)
            elif f.name == "flux1-dev.safetensors":
                target.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
            else:
                target.symlink_to(f)
        with engine.load_model(broken) as job:
            assert job.wait(timeout=120) == fe.JobState.FAILED
            err = error_of(job.raise_if_failed)
            assert err.code == fe.Result.JOB_FAILED and "flux1-dev.safetensors" in err.message
        no_model = error_of(engine.text_to_image(**REFERENCE).finish, timeout=60)
        assert no_model.code == fe.Result.JOB_FAILED and "model" in no_model.message


def test_closed_engines_requests_images_and_released_jobs(model_dir):
    engine = fe.Engine()
    job = engine.load_model(model_dir)
    job.release()
    job.release()
    assert error_of(job.status).code == fe.Result.UNKNOWN_JOB
    request = fe.Request("x")
    image = fe.Image(16, 16)
    image.close()
    image.close()
    assert error_of(request.add_reference, image).code == fe.Result.INVALID_HANDLE
    assert image.to_numpy().shape == (16, 16, 4), "the host memory stays the image's"
    request.close()
    assert error_of(request.set_seed, 1).code == fe.Result.INVALID_HANDLE
    assert error_of(engine.submit, request).code == fe.Result.INVALID_HANDLE
    engine.close()
    engine.close()
    assert engine.closed
    assert error_of(engine.text_to_image, "x").code == fe.Result.INVALID_HANDLE
    assert error_of(engine.poll_event).code == fe.Result.INVALID_HANDLE


def test_result_before_the_job_finishes_is_not_ready(engine):
    with engine.text_to_image("slow", width=512, height=512, steps=28) as job:
        assert error_of(job.image).code == fe.Result.NOT_READY
        assert error_of(job.write_image, fe.Image(512, 512)).code == fe.Result.NOT_READY
