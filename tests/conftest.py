"""Shared fixtures: the devices to run on. The CUDA cases run on a GPU where there is one, else
on the CPU through ``cuda_emulator``, else they skip with the reason."""
from __future__ import annotations

import pathlib

import pytest
from hypothesis import settings

import cuda_emulator
import scratchgen as sg

ROOT = pathlib.Path(__file__).resolve().parents[1]
MNIST_DIR = ROOT.parent / "shared" / "data" / "mnist"


CUDA_SKIP_REASON, CUDA_EMULATED = cuda_emulator.setup_for_tests()

# The property tests check values, not time: no per-example deadline, so that a loaded machine
# (a shared 2-core CI runner) cannot fail them.
settings.register_profile("scratchgen", deadline=None)
settings.load_profile("scratchgen")


def pytest_report_header() -> str:
    if CUDA_EMULATED:
        return ("cuda: no GPU; the CUDA tests run the CUDA C kernels on the CPU (cuda_emulator; "
                "SCRATCHGEN_CUDA_EMULATOR=0 skips them)")
    return f"cuda: {CUDA_SKIP_REASON or 'on the GPU'}"


requires_cuda = pytest.mark.skipif(CUDA_SKIP_REASON is not None, reason=CUDA_SKIP_REASON or "")

DEVICES = ["cpu", pytest.param("cuda", marks=[requires_cuda, pytest.mark.cuda])]


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    """Each test that takes ``device`` runs on the CPU and on CUDA (a GPU or the emulator)."""
    return request.param


@pytest.fixture(autouse=True)
def _seed():
    sg.manual_seed(0)
    yield
