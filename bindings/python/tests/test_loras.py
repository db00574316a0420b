"""LoRAs per request (``Request.add_lora`` / ``clear_loras`` / ``loras=``) on the tiny model with
the fixtures of tests/fixtures/flux-lora: they change the image, switching back gives the plain
model's pixels exactly, several apply together, bad input is refused by the library, files that
are not LoRAs of this model fail their job, and the PNG names the LoRAs."""

import json
import struct
import zlib

import pytest
from conftest import REFERENCE

import flux_engine as fe


def pixels(engine, request_or_settings):
    """RGB8 bytes of one job: a ``Request`` submitted, or ``text_to_image`` keywords."""
    if isinstance(request_or_settings, fe.Request):
        job = engine.submit(request_or_settings)
    else:
        job = engine.text_to_image(**request_or_settings)
    with job:
        return bytes(job.result(fe.PixelFormat.RGB8, timeout=120).data)


def error_of(fn, *args, **kwargs):
    with pytest.raises(fe.FluxError) as err:
        fn(*args, **kwargs)
    return err.value


def png_text(path):
    """The tEXt / zTXt / iTXt entries of a PNG, as {keyword: text}."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    out, pos = {}, 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"tEXt":
            key, _, text = body.partition(b"\0")
            out[key.decode("latin-1")] = text.decode("latin-1")
        elif kind == b"zTXt":
            key, _, rest = body.partition(b"\0")
            out[key.decode("latin-1")] = zlib.decompress(rest[1:]).decode("latin-1")
        elif kind == b"iTXt":
            key, _, rest = body.partition(b"\0")
            compressed, rest = rest[0], rest[2:]
            _language, _, rest = rest.partition(b"\0")
            _translated, _, text = rest.partition(b"\0")
            out[key.decode("latin-1")] = (zlib.decompress(text) if compressed else text).decode()
    return out


def write_safetensors(path, tensors):
    """A float32 safetensors file from {name: (shape, fill value)}."""
    header, blobs, offset = {}, [], 0
    for name, (shape, value) in tensors.items():
        count = 1
        for n in shape:
            count *= n
        blob = struct.pack(f"<{count}f", *([value] * count))
        header[name] = {"dtype": "F32", "shape": list(shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def test_a_lora_changes_the_image_and_switching_back_restores_it(engine, expected_rgb, lora_dir):
    kohya = lora_dir / "lora_a_kohya.safetensors"
    with fe.Request(**REFERENCE) as request:
        assert pixels(engine, request) == expected_rgb
        assert request.add_lora(kohya) is request, "setters chain"  # os.PathLike, strength 1
        styled = pixels(engine, request)
        assert styled != expected_rgb, "the LoRA changes the image"
        assert pixels(engine, request) == styled, "the same LoRA again: the same image"
        assert request.clear_loras() is request
        assert pixels(engine, request) == expected_rgb, "no LoRA: exactly the plain model again"
        half = pixels(engine, request.add_lora(str(kohya), 0.5))
        assert half not in (expected_rgb, styled), "the strength is passed on"
    # The same through the constructor's and text_to_image's `loras` keyword.
    assert pixels(engine, dict(REFERENCE, loras=[(kohya, 1.0)])) == styled
    assert pixels(engine, dict(REFERENCE, loras=[str(kohya)])) == styled, "a bare path: 1.0"
    with fe.Request(**REFERENCE, loras=[(kohya, 0.5)]) as request:
        assert pixels(engine, request) == half
    assert pixels(engine, dict(REFERENCE, loras=[])) == expected_rgb
    assert pixels(engine, REFERENCE) == expected_rgb, "the engine keeps no LoRA applied"


def test_every_format_and_two_loras_at_once(engine, expected_rgb, lora_dir):
    alone = {}
    for name in ["lora_a_kohya", "lora_b_peft", "lora_c_xlabs", "lora_d_kohya_single"]:
        alone[name] = pixels(engine, dict(REFERENCE, loras=[(lora_dir / f"{name}.safetensors", 1)]))
        assert alone[name] != expected_rgb, f"{name} changes the image"
    assert len(set(alone.values())) == 4, "each LoRA gives its own image"
    a, d = lora_dir / "lora_a_kohya.safetensors", lora_dir / "lora_d_kohya_single.safetensors"
    both = pixels(engine, dict(REFERENCE, loras=[(a, 1.0), (d, 0.7)]))
    assert both not in (expected_rgb, alone["lora_a_kohya"], alone["lora_d_kohya_single"])
    with fe.Request(**REFERENCE) as request:
        assert pixels(engine, request.add_lora(a).add_lora(d, 0.7)) == both
    assert pixels(engine, dict(REFERENCE, loras=[(a, 1.0), (d, 1.0)])) != both


def test_loras_in_edits_and_image_to_image(engine, expected_rgb, lora_dir):
    kohya = lora_dir / "lora_a_kohya.safetensors"
    source = fe.Image(64, 48, fe.PixelFormat.RGB8, expected_rgb)
    settings = dict(seed=1, steps=2, t5_len=16, snap=False)
    for submit in [
        lambda **kw: engine.edit("make it night", [source], **settings, **kw),
        lambda **kw: engine.image_to_image("at noon", source, strength=0.5, **settings, **kw),
    ]:
        with submit() as job:
            plain = job.result(fe.PixelFormat.RGB8, timeout=120).data
        with submit(loras=[(kohya, 1.0)]) as job:
            assert job.result(fe.PixelFormat.RGB8, timeout=120).data != plain


def test_bad_strengths_and_missing_files_are_refused(engine, expected_rgb, lora_dir, tmp_path):
    kohya = lora_dir / "lora_a_kohya.safetensors"
    with fe.Request(**REFERENCE) as request:
        for bad in [float("nan"), float("inf"), -float("inf"), 1e39]:  # 1e39: inf as a float
            err = error_of(request.add_lora, kohya, bad)
            assert err.code == fe.Result.INVALID_ARGUMENT, err
            assert "strength" in err.message and kohya.name in err.message, err
        missing = tmp_path / "no such lora.safetensors"
        err = error_of(request.add_lora, missing)
        assert err.code == fe.Result.INVALID_ARGUMENT, err
        assert "does not exist" in err.message and missing.name in err.message, err
        err = error_of(request.add_lora, tmp_path)
        assert err.code == fe.Result.INVALID_ARGUMENT, "a folder is not a LoRA file"
        assert pixels(engine, request) == expected_rgb, "refused LoRAs leave the request as it was"
        for _ in range(16):
            request.add_lora(kohya, 0.0)
        err = error_of(request.add_lora, kohya)
        assert err.code == fe.Result.INVALID_ARGUMENT and "16" in err.message, err
        request.clear_loras().add_lora(kohya, -1.0)  # negative strengths are finite: accepted
    err = error_of(engine.text_to_image, **REFERENCE, loras=[(missing, 1.0)])
    assert err.code == fe.Result.INVALID_ARGUMENT and missing.name in err.message
    err = error_of(fe.Request, "x", loras=[(kohya, float("nan"))])
    assert err.code == fe.Result.INVALID_ARGUMENT and "strength" in err.message


def test_wrong_types_are_refused_before_the_call(lora_dir):
    kohya = lora_dir / "lora_a_kohya.safetensors"
    with fe.Request("x") as request:
        with pytest.raises(TypeError):
            request.add_lora(42)
        with pytest.raises(TypeError):
            request.add_lora(kohya, "1.0")
        with pytest.raises(TypeError):
            request.add_lora(kohya, None)
        with pytest.raises(ValueError):
            request.add_lora(str(kohya) + "\0")
        with pytest.raises(TypeError):
            fe.Request("x", loras=str(kohya))  # one path, not a list of them
        request.add_lora(bytes(kohya), 1).add_lora(str(kohya), True)  # bytes paths, ints, bools
    request.close()
    assert error_of(request.add_lora, kohya).code == fe.Result.INVALID_HANDLE
    assert error_of(request.clear_loras).code == fe.Result.INVALID_HANDLE


def test_files_that_are_not_loras_of_this_model_fail_the_job(
    engine, expected_rgb, model_dir, lora_dir, tmp_path
):
    misfit = tmp_path / "misfit.safetensors"  # img_in takes 64 inputs, not 10
    write_safetensors(misfit, {
        "lora_unet_img_in.lora_down.weight": ((4, 10), 0.1),
        "lora_unet_img_in.lora_up.weight": ((64, 4), 0.1),
    })
    not_safetensors = tmp_path / "notes.safetensors"
    not_safetensors.write_text("not a safetensors file")
    cases = [
        (model_dir / "flux1-dev.safetensors", ["flux1-dev.safetensors", "LoRA"]),
        (lora_dir / "MANIFEST.md", ["MANIFEST.md"]),
        (not_safetensors, ["notes.safetensors"]),
        (misfit, ["misfit.safetensors", "lora_unet_img_in", "does not fit"]),
    ]
    for path, named in cases:
        with engine.text_to_image(**REFERENCE, loras=[(path, 1.0)]) as job:
            assert job.wait(timeout=120) == fe.JobState.FAILED, path
            err = error_of(job.raise_if_failed)
            assert err.code == fe.Result.JOB_FAILED, err
            assert all(n in err.message for n in named), (named, err.message)
            assert error_of(job.finish).code == fe.Result.JOB_FAILED
        assert pixels(engine, REFERENCE) == expected_rgb, "the model is left as it was"
    # A bad file next to a good one fails the job as well (nothing half-applied).
    good = lora_dir / "lora_a_kohya.safetensors"
    with engine.text_to_image(**REFERENCE, loras=[(good, 1.0), (misfit, 1.0)]) as job:
        assert job.wait(timeout=120) == fe.JobState.FAILED
    assert pixels(engine, REFERENCE) == expected_rgb


def test_the_png_names_the_loras(engine, lora_dir, tmp_path):
    a, d = lora_dir / "lora_a_kohya.safetensors", lora_dir / "lora_d_kohya_single.safetensors"
    with engine.text_to_image(**REFERENCE, loras=[(a, 1.0), (d, 0.7)]) as job:
        job.finish(timeout=120).save(tmp_path / "styled.png")
    with engine.text_to_image(**REFERENCE) as job:
        job.finish(timeout=120).save(tmp_path / "plain.png")
    styled, plain = png_text(tmp_path / "styled.png"), png_text(tmp_path / "plain.png")
    assert styled["loras"] == "lora_a_kohya.safetensors:1, lora_d_kohya_single.safetensors:0.7"
    assert styled["prompt"] == plain["prompt"] == REFERENCE["prompt"]
    assert "loras" not in plain, plain
