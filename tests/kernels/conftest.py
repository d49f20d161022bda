"""The ``cupy`` fixture: the CuPy module for the CUDA-path tests, or a skip naming what is missing."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def cupy():
    cp = pytest.importorskip("cupy", reason="CuPy is not installed")
    try:
        if cp.cuda.runtime.getDeviceCount() < 1:
            pytest.skip("no CUDA device")
    except Exception as err:  # CUDA driver missing or broken
        pytest.skip(f"no usable CUDA device: {err}")
    return cp
