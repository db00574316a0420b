"""End to end on the tiny model through libflux_engine: the mirrors against the header,
requests (text-to-image, Kontext edits, image-to-image), results in every pixel format, cancel,
events."""

import ctypes
import os
import pathlib
import re
import threading

import numpy as np
import pytest
from conftest import REFERENCE

import flux_engine as fe
from flux_engine import _native

HEADER = pathlib.Path(__file__).resolve().parents[3] / "include" / "flux_engine.h"


def _abi_layout():
    """The header's structs (size, fields and offsets in order) and enum values as a C compiler
    lays them out: FLUX_ABI_LAYOUT, written by the Rust driver's C probe."""
    structs, enums = {}, {}
    for line in open(os.environ["FLUX_ABI_LAYOUT"]).read().splitlines():
        kind, *rest = line.split()
        if kind == "struct":
            structs[rest[0]] = (int(rest[1]), [])
        elif kind == "field":
            structs[rest[0]][1].append((rest[1], int(rest[2])))
        elif kind == "enum":
            enums[rest[0]] = int(rest[1])
    return structs, enums


def test_mirrors_match_the_c_layout():
    structs, enums = _abi_layout()
    mirrors = [
        v for v in vars(_native).values()
        if isinstance(v, type) and issubclass(v, ctypes.Structure) and v is not ctypes.Structure
    ]
    assert {"Flux" + m.__name__ for m in mirrors} == set(structs), "one mirror per header struct"
    for mirror in mirrors:
        size, fields = structs["Flux" + mirror.__name__]
        got = [(name, getattr(mirror, name).offset) for name, _ in mirror._fields_]
        assert got == fields, mirror.__name__
        assert ctypes.sizeof(mirror) == size, mirror.__name__
    prefixes = {
        fe.Result: "FLUX_RESULT_", fe.Device: "FLUX_DEVICE_", fe.DType: "FLUX_DTYPE_",
        fe.PixelFormat: "FLUX_PIXEL_FORMAT_", fe.JobState: "FLUX_JOB_STATE_",
        fe.CancelOutcome: "FLUX_CANCEL_OUTCOME_", fe.EventType: "FLUX_EVENT_TYPE_",
        fe.TextPlacement: "FLUX_TEXT_PLACEMENT_", fe.LogLevel: "FLUX_LOG_LEVEL_",
        fe.Kontext: "FLUX_KONTEXT_", fe.ExternalMemoryType: "FLUX_EXTERNAL_MEMORY_TYPE_",
        fe.SemaphoreType: "FLUX_SEMAPHORE_TYPE_",
    }
    for enum, prefix in prefixes.items():
        want = {k[len(prefix):]: v for k, v in enums.items() if k.startswith(prefix)}
        assert {m.name: m.value for m in enum} == want, enum.__name__
    unmirrored = [k for k in enums if not any(k.startswith(p) for p in prefixes.values())]
    assert not unmirrored, "every header enum has a Python mirror"
    defines = dict(re.findall(r"#define FLUX_PRIORITY_(\w+) (-?\d+)", HEADER.read_text()))
    assert {k: int(v) for k, v in defines.items()} == {
        "INTERACTIVE": fe.PRIORITY_INTERACTIVE, "NORMAL": fe.PRIORITY_NORMAL,
        "BATCH": fe.PRIORITY_BATCH,
    }


def test_library_and_struct_layouts_match_the_header():
    assert fe.version().count(".") == 2
    assert _native.lib().flux_abi_version() == fe.ABI_VERSION == 2
    assert len(_native._DEFAULTS) == 6
    for struct, name in _native._DEFAULTS.items():
        # The library writes exactly the size it is given, never past it.
        size = ctypes.sizeof(struct)
        buf = ctypes.create_string_buffer(b"\xee" * (size + 64))
        getattr(_native.lib(), name)(buf, size)
        assert int.from_bytes(buf.raw[:4], "little") == size, struct.__name__
        assert buf.raw[size : size + 64] == b"\xee" * 64, struct.__name__
        older = ctypes.create_string_buffer(b"\xee" * 64)
        getattr(_native.lib(), name)(older, 8)
        assert older.raw[8:64] == b"\xee" * 56, "an older, smaller struct is not overrun"
    desc = _native.defaults(_native.ImageDesc)
    assert (desc.format, desc.bottom_up) == (fe.PixelFormat.RGBA8, 0)


def test_generate_in_every_pixel_format(engine, expected_rgb, tmp_path):
    rgb = np.frombuffer(expected_rgb, np.uint8).reshape(48, 64, 3)
    with engine.text_to_image(**REFERENCE) as job:
        image = job.result(fe.PixelFormat.RGB8, timeout=120)
        assert (image.width, image.height, image.format) == (64, 48, fe.PixelFormat.RGB8)
        assert image.data == expected_rgb
        rgba = job.image(fe.PixelFormat.RGBA8).to_numpy()
        assert np.array_equal(rgba[..., :3], rgb) and (rgba[..., 3] == 255).all()
        bgra = job.image(fe.PixelFormat.BGRA8).to_numpy()
        assert np.array_equal(bgra[..., 2::-1], rgb) and (bgra[..., 3] == 255).all()
        unit = rgb.astype(np.float32) / np.float32(255)
        floats = job.image(fe.PixelFormat.RGBA32F, bottom_up=True)
        assert floats.bottom_up and floats.to_numpy().dtype == np.float32
        assert np.array_equal(floats.to_numpy()[::-1, :, :3], unit), "bottom row first"
        assert (floats.to_numpy()[..., 3] == 1.0).all()
        halves = job.image(fe.PixelFormat.RGBA16F).to_numpy()
        assert halves.dtype == np.float16
        assert np.array_equal(halves[..., :3], unit.astype(np.float16))
        job.save(tmp_path / "out.png")
    assert (tmp_path / "out.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    kinds = {}
    for e in engine.events():
        if e.job == job.id:
            kinds.setdefault(e.kind, []).append(e)
    assert [p.step for p in kinds[fe.EventType.PROGRESS]] == [1, 2, 3]
    assert all(p.total == 3 for p in kinds[fe.EventType.PROGRESS])
    assert len(kinds[fe.EventType.FINISHED]) == 1


def test_results_are_written_into_the_hosts_memory(engine, expected_rgb):
    pitch = 64 * 4 + 12
    memory = bytearray(b"\xab" * (pitch * 48))
    target = fe.Image(64, 48, fe.PixelFormat.RGBA8, memory, row_pitch=pitch)
    array = np.zeros((48, 64, 3), np.uint8)
    with engine.text_to_image(**REFERENCE) as job, target:
        job.finish(timeout=120)
        job.write_image(target)
        job.write_image(fe.Image.from_numpy(array))
        with pytest.raises(fe.FluxError) as err:
            job.write_image(fe.Image(32, 32))
        assert err.value.code == fe.Result.INVALID_ARGUMENT and "64x48" in err.value.message
    rows = [memory[y * pitch : (y + 1) * pitch] for y in range(48)]
    assert all(row[64 * 4 :] == b"\xab" * 12 for row in rows), "the padding is left as it is"
    pixels = np.array([np.frombuffer(bytes(r[: 64 * 4]), np.uint8) for r in rows])
    assert np.array_equal(pixels.reshape(48, 64, 4)[..., :3].ravel(), array.ravel())
    assert array.tobytes() == expected_rgb, "a numpy array is written in place"
    assert np.shares_memory(target.to_numpy(), np.frombuffer(memory, np.uint8))


def test_one_request_submitted_again_changed_and_cleared(engine, expected_rgb):
    source = np.frombuffer(expected_rgb, np.uint8).reshape(48, 64, 3)
    with fe.Request(**REFERENCE) as request:
        with engine.submit(request) as first, engine.submit(request) as again:
            assert first.id != again.id
            assert first.result(fe.PixelFormat.RGB8, timeout=120).data == expected_rgb
            assert again.result(fe.PixelFormat.RGB8, timeout=120).data == expected_rgb
        with pytest.raises(fe.FluxError):
            request.set_steps(0)  # refused: the request keeps 3 steps
        with engine.submit(request.set_seed(8)) as other:
            assert other.result(fe.PixelFormat.RGB8, timeout=120).data != expected_rgb
        request.set_seed(7).add_reference(source).clear_images()
        with engine.submit(request) as job:
            assert job.result(fe.PixelFormat.RGB8, timeout=120).data == expected_rgb


def _edit(engine, *references, **settings):
    settings = {"seed": 1, "steps": 2, "t5_len": 16, "snap": False, **settings}
    with engine.edit("make it night", list(references), **settings) as job:
        return job.result(fe.PixelFormat.RGB8, timeout=120).to_numpy().copy()


def test_kontext_edits_from_every_pixel_format_and_several_references(engine, expected_rgb):
    source = np.frombuffer(expected_rgb, dtype=np.uint8).reshape(48, 64, 3)
    edited = _edit(engine, source)
    assert edited.shape == (48, 64, 3) and not np.array_equal(edited, source)
    floats = np.ones((48, 64, 4), np.float32)
    floats[..., :3] = source[::-1] / np.float32(255)
    bgra = np.full((48, 64, 4), 7, np.uint8)
    bgra[..., :3] = source[..., ::-1]
    halves = floats[::-1].astype(np.float16)
    for same in [
        fe.Image.from_numpy(floats, bottom_up=True),
        fe.Image.from_numpy(bgra, fe.PixelFormat.BGRA8),
        fe.Image.from_numpy(halves),
        fe.Image(64, 48, fe.PixelFormat.RGB8, expected_rgb),
    ]:
        with same:
            assert np.array_equal(_edit(engine, same), edited), same
    second = np.zeros((32, 32, 3), np.uint8)
    two = _edit(engine, source, second)
    assert two.shape == (48, 64, 3), "the first reference gives the size"
    assert not np.array_equal(two, edited), "the second reference is seen"
    assert _edit(engine, source, second, source, second).shape == (48, 64, 3)
    assert _edit(engine, source, width=32, height=32).shape == (32, 32, 3)


def test_image_to_image(engine, expected_rgb):
    init = fe.Image(64, 48, fe.PixelFormat.RGB8, expected_rgb)
    with engine.image_to_image("at noon", init, strength=0.5, steps=4, t5_len=16) as job:
        out = job.result(fe.PixelFormat.RGB8, timeout=120)
        assert (out.width, out.height) == (64, 48) and out.data != expected_rgb
    odd = np.zeros((50, 70, 4), np.uint8)
    with engine.image_to_image("at noon", odd, strength=1.0, steps=1, t5_len=16) as job:
        assert job.finish(timeout=120).image_size() == (64, 48), "rounded down to 16s"


def test_kontext_setting_of_the_model(model_dir):
    warning = "not marked Kontext-trained"
    source = np.zeros((32, 32, 3), np.uint8)
    with fe.Engine(log_level=fe.LogLevel.WARN) as engine:
        for kontext, warned in [(fe.Kontext.YES, False), (False, True), (True, False)]:
            assert engine.load_model(model_dir, kontext=kontext).wait(timeout=120) == (
                fe.JobState.SUCCEEDED
            )
            _edit(engine, source, steps=1)
            logs = [e.message for e in engine.events() if e.kind == fe.EventType.LOG]
            assert any(warning in m for m in logs) == warned, (kontext, logs)


def test_cancel_a_running_job(engine):
    with engine.text_to_image("a long job", width=512, height=512, steps=28) as job:
        while job.status().state == fe.JobState.QUEUED:
            pass
        assert job.cancel() in (fe.CancelOutcome.REQUESTED, fe.CancelOutcome.DEQUEUED)
        assert job.wait(timeout=60) == fe.JobState.CANCELLED
        with pytest.raises(fe.FluxError) as err:
            job.result()
        assert err.value.code == fe.Result.CANCELLED
        with pytest.raises(fe.FluxError) as err:
            job.image()
        assert err.value.code == fe.Result.NOT_READY
        assert job.cancel() == fe.CancelOutcome.ALREADY_FINISHED


def test_cancel_a_queued_job_and_wait_with_timeout(engine):
    with engine.text_to_image("first", width=512, height=512, steps=28) as running:
        with engine.text_to_image("second", width=64, height=64, steps=1) as queued:
            assert queued.cancel() == fe.CancelOutcome.DEQUEUED
            assert queued.wait(timeout=5) == fe.JobState.CANCELLED
        with pytest.raises(fe.FluxError) as err:
            running.wait(timeout=0.05)
        assert err.value.code == fe.Result.TIMEOUT
        assert running.status().state == fe.JobState.RUNNING


def test_priorities_order_the_queue(engine):
    with engine.text_to_image("first", width=512, height=512, steps=28) as running:
        late = dict(REFERENCE, steps=1)
        with engine.text_to_image(**late, priority=fe.PRIORITY_BATCH) as batch, \
                engine.text_to_image(**late, priority=fe.PRIORITY_INTERACTIVE) as urgent:
            running.cancel()
            assert batch.wait(timeout=120) == urgent.wait(timeout=120) == fe.JobState.SUCCEEDED
            ids = (batch.id, urgent.id)
            started = [e.job for e in engine.events()
                       if e.kind == fe.EventType.STARTED and e.job in ids]
            assert started == [urgent.id, batch.id], "higher priority first"


def test_events_through_a_callback_on_the_worker_thread(model_dir):
    seen, threads = [], set()

    def on_event(e):
        seen.append(e.kind)
        threads.add(threading.get_ident())

    with fe.Engine(on_event=on_event, log_level=fe.LogLevel.OFF) as engine:
        engine.load_model(model_dir).wait(timeout=120)
        with engine.text_to_image(**{**REFERENCE, "steps": 2}) as job:
            assert job.wait(timeout=120) == fe.JobState.SUCCEEDED
        assert engine.poll_event() is None
    assert seen.count(fe.EventType.FINISHED) == 2
    assert seen.count(fe.EventType.PROGRESS) == 2
    assert len(threads - {threading.get_ident()}) == 1


def test_a_streamed_plan_gives_the_same_image_and_is_reported(model_dir, expected_rgb):
    plan = fe.Plan(fe.TextPlacement.RELEASED, stream_window=1)
    with fe.Engine(log_level=fe.LogLevel.OFF, memory_reserve=0) as engine:
        engine.set_plan(plan)
        assert engine.load_model(model_dir).wait(timeout=120) == fe.JobState.SUCCEEDED
        with engine.text_to_image(**REFERENCE) as job:
            assert job.result(fe.PixelFormat.RGB8, timeout=120).data == expected_rgb
        r = engine.residency()
        assert r.plan == plan and r.release_text_encoders and r.text_encoders == 0
        reasons = [e.message for e in engine.events() if e.kind == fe.EventType.RESIDENCY]
        assert any("streamed from host memory (1 at a time" in m for m in reasons), reasons
        engine.set_plan(None)
        with engine.text_to_image(**REFERENCE) as job:
            assert job.result(fe.PixelFormat.RGB8, timeout=120).data == expected_rgb
        assert engine.residency().plan == fe.Plan()
