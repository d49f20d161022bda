"""The ``cupy`` fixture for the CUDA-path tests: CuPy on a GPU, or ``cuda_emulator``'s stand-in
(the same CUDA C kernels compiled for the CPU; see ``tests/conftest.py``), or a skip that names
what is missing."""
from __future__ import annotations

import pytest

import cuda_emulator


@pytest.fixture(scope="module")
def cupy():
    why_not, _ = cuda_emulator.setup_for_tests()
    if why_not is not None:
        pytest.skip(why_not)
    import cupy as cp

    return cp
