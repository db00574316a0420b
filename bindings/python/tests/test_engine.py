"""End to end on the tiny model through libflux_engine: generate, edit, cancel, events."""

import ctypes
import os
import threading

import pytest
from conftest import REFERENCE

import flux_engine as fe
from flux_engine import _native


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
    assert len(mirrors) >= 10
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
    }
    for enum, prefix in prefixes.items():
        want = {k[len(prefix):]: v for k, v in enums.items() if k.startswith(prefix)}
        assert {m.name: m.value for m in enum} == want, enum.__name__


def test_library_and_struct_layouts_match_the_header():
    assert fe.version().count(".") == 2
    assert _native.lib().flux_abi_version() == fe.ABI_VERSION
    for struct in [
        _native.EngineDesc,
        _native.ModelDesc,
        _native.TextToImageDesc,
        _native.EditDesc,
        _native.ImageToImageDesc,
    ]:
        # The library writes exactly the size it is given, never past it.
        size = ctypes.sizeof(struct)
        buf = ctypes.create_string_buffer(b"\xee" * (size + 64))
        getattr(_native.lib(), _native._DEFAULTS[struct])(buf, size)
        assert int.from_bytes(buf.raw[:4], "little") == size, struct.__name__
        assert buf.raw[size : size + 64] == b"\xee" * 64, struct.__name__
        older = ctypes.create_string_buffer(b"\xee" * 64)
        getattr(_native.lib(), _native._DEFAULTS[struct])(older, 8)
        assert older.raw[8:64] == b"\xee" * 56, "an older, smaller struct is not overrun"


def test_generate_equals_the_library_output_for_the_same_seed(engine, expected_rgb, tmp_path):
    with engine.text_to_image(**REFERENCE) as job:
        rgb = job.result(fe.PixelFormat.RGB8, timeout=120)
        assert (rgb.width, rgb.height) == (64, 48)
        assert rgb.data == expected_rgb
        rgba = job.image(fe.PixelFormat.RGBA8)
        assert rgba.data[3::4] == b"\xff" * (64 * 48)
        assert bytes(b for i, b in enumerate(rgba.data) if i % 4 != 3) == expected_rgb
        floats = job.image(fe.PixelFormat.RGBA32F).to_numpy()
        assert floats.shape == (48, 64, 4) and floats.min() >= 0.0 and floats.max() <= 1.0
        job.save(tmp_path / "out.png")
    assert (tmp_path / "out.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    kinds = {}
    for e in engine.events():
        if e.job == job.id:
            kinds.setdefault(e.kind, []).append(e)
    assert [p.step for p in kinds[fe.EventType.PROGRESS]] == [1, 2, 3]
    assert all(p.total == 3 for p in kinds[fe.EventType.PROGRESS])
    assert len(kinds[fe.EventType.FINISHED]) == 1


def test_numpy_round_trip_and_kontext_edit(engine, expected_rgb):
    np = pytest.importorskip("numpy")
    source = np.frombuffer(expected_rgb, dtype=np.uint8).reshape(48, 64, 3)
    with engine.edit("make it night", source, snap=False, seed=1, steps=2, t5_len=16) as job:
        edited = job.result(timeout=120).to_numpy()
    assert edited.shape == (48, 64, 4) and edited.dtype == np.uint8
    assert not np.array_equal(edited[..., :3], source)
    init = fe.Image(64, 48, fe.PixelFormat.RGB8, expected_rgb)
    with engine.image_to_image("at noon", init, strength=0.5, steps=4, t5_len=16) as job:
        assert job.result(timeout=120).width == 64


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
