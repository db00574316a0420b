"""Fixtures for the end-to-end tests. The Rust driver (`cargo test -p flux-ffi --test hosts`)
sets FLUX_ENGINE_LIB (the built library), FLUX_TEST_MODEL (the tiny dev model) and
FLUX_TEST_EXPECTED (RGB8 pixels of the reference request below, made with the Rust API). The
LoRA files for the tiny model are the repository's tests/fixtures/flux-lora (or
FLUX_TEST_LORAS)."""

import os
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import flux_engine as fe  # noqa: E402

#: The request whose pixels FLUX_TEST_EXPECTED holds.
REFERENCE = dict(
    prompt="a red lighthouse at dusk", width=64, height=48, seed=7, steps=3, t5_len=32
)


def _env(name):
    value = os.environ.get(name)
    if not value:
        pytest.exit(f"{name} is not set: run these tests with `cargo test -p flux-ffi --test hosts`")
    return value


@pytest.fixture(scope="session")
def model_dir():
    return pathlib.Path(_env("FLUX_TEST_MODEL"))


@pytest.fixture(scope="session")
def expected_rgb():
    return pathlib.Path(_env("FLUX_TEST_EXPECTED")).read_bytes()


@pytest.fixture(scope="session")
def lora_dir():
    """tests/fixtures/flux-lora: kohya, PEFT and XLabs LoRAs that fit the tiny dev model."""
    default = pathlib.Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "flux-lora"
    folder = pathlib.Path(os.environ.get("FLUX_TEST_LORAS") or default)
    if not (folder / "lora_a_kohya.safetensors").is_file():
        pytest.exit(f"the LoRA fixtures are not in {folder} (set FLUX_TEST_LORAS)")
    return folder


@pytest.fixture(scope="session")
def engine(model_dir):
    """One engine with the tiny model loaded, shared by the tests that only submit jobs."""
    with fe.Engine() as e:
        assert e.load_model(model_dir).wait(timeout=120) == fe.JobState.SUCCEEDED
        yield e
