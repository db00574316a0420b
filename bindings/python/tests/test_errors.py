"""Bad input raises FluxError (or TypeError/ValueError before crossing) and loses nothing."""

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
    assert error_of(engine.text_to_image, "x", width=1 << 20).code == fe.Result.INVALID_ARGUMENT
    with engine.text_to_image(**REFERENCE) as job:
        assert job.wait(timeout=120) == fe.JobState.SUCCEEDED, "the engine still works"


def test_wrong_types_and_images_are_refused_before_the_call(engine):
    with pytest.raises(TypeError):
        engine.text_to_image(b"bytes are not a prompt")
    with pytest.raises(ValueError):
        engine.edit("x", fe.Image(4, 4, fe.PixelFormat.RGB8, b"short"))
    with pytest.raises(ValueError):
        engine.edit("x", fe.Image(1, 1, fe.PixelFormat.RGBA32F, bytes(16)))
    with pytest.raises(TypeError):
        engine.edit("x", "not an image")
    np = pytest.importorskip("numpy")
    with pytest.raises(ValueError):
        engine.edit("x", np.zeros((16, 16, 3), dtype=np.float32))


def test_edit_needs_one_to_four_images(engine):
    image = fe.Image(16, 16, fe.PixelFormat.RGB8, bytes(16 * 16 * 3))
    assert error_of(engine.edit, "x", []).code == fe.Result.INVALID_ARGUMENT
    assert error_of(engine.edit, "x", [image] * 5).code == fe.Result.INVALID_ARGUMENT


def test_missing_and_corrupt_models(tmp_path, model_dir):
    with fe.Engine() as engine:
        err = error_of(engine.load_model, tmp_path / "nowhere")
        assert err.code in (fe.Result.IO, fe.Result.UNKNOWN_LAYOUT)
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


def test_closed_engines_and_released_jobs(model_dir):
    engine = fe.Engine()
    job = engine.load_model(model_dir)
    job.release()
    job.release()
    assert error_of(job.status).code == fe.Result.UNKNOWN_JOB
    engine.close()
    engine.close()
    assert engine.closed
    assert error_of(engine.text_to_image, "x").code == fe.Result.INVALID_HANDLE
    assert error_of(engine.poll_event).code == fe.Result.INVALID_HANDLE


def test_result_before_the_job_finishes_is_not_ready(engine):
    with engine.text_to_image("slow", width=512, height=512, steps=28) as job:
        assert error_of(job.image).code == fe.Result.NOT_READY
