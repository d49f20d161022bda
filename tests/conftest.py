"""Shared fixtures: the devices to run on (CUDA cases skip with a reason when there is no GPU)."""
from __future__ import annotations

import pathlib

import pytest

import scratchgen as sg

ROOT = pathlib.Path(__file__).resolve().parents[1]
MNIST_DIR = ROOT.parent / "shared" / "data" / "mnist"


def _cuda_reason() -> str | None:
    try:
        import cupy  # noqa: F401
    except ImportError:
        return "CuPy is not installed (pip install 'scratchgen[cuda]')"
    if not sg.cuda_is_available():
        return "CuPy is installed but no NVIDIA GPU is visible"
    return None


CUDA_SKIP_REASON = _cuda_reason()
requires_cuda = pytest.mark.skipif(CUDA_SKIP_REASON is not None, reason=CUDA_SKIP_REASON or "")

DEVICES = ["cpu", pytest.param("cuda", marks=[requires_cuda, pytest.mark.cuda])]


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    """Each test that takes ``device`` runs on the CPU and, where there is one, on a GPU."""
    return request.param


@pytest.fixture(autouse=True)
def _seed():
    sg.manual_seed(0)
    yield
