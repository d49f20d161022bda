"""Loading the CUDA C sources in ``kernels/cuda/`` through ``cupy.RawModule``.

Each ``.cu`` file is compiled once per process (and CuPy caches the binary on disk), so the
first call of a kernel pays for compilation and later calls only launch it.
"""
from __future__ import annotations

import functools
import pathlib

import numpy

_SOURCE_DIR = pathlib.Path(__file__).with_name("cuda")


def is_cupy_array(x) -> bool:
    """True for a CuPy ndarray, without importing CuPy (which may not be installed). The one
    test of the package: ``scratchgen.backend`` uses it too."""
    t = type(x)
    return t is not numpy.ndarray and t.__module__.split(".", 1)[0] == "cupy"


def get_array_module(x):
    """``cupy`` for a CuPy array, else ``numpy``."""
    if is_cupy_array(x):
        import cupy

        return cupy
    return numpy


@functools.lru_cache(maxsize=None)
def module(source_name: str, options: tuple[str, ...] = ("--std=c++14",)):
    """The compiled ``cupy.RawModule`` for ``kernels/cuda/<source_name>``."""
    import cupy

    source = (_SOURCE_DIR / source_name).read_text()
    return cupy.RawModule(code=source, options=options)


def function(source_name: str, kernel_name: str):
    """One ``__global__`` function (a ``cupy.RawKernel``) of a source file in ``kernels/cuda/``.

    Templated kernels are named with their instantiation, e.g. ``"im2col<float>"``; the source
    must then declare ``template __global__ void im2col<float>(...)`` explicitly, and the name
    must be passed in ``name_expressions`` -- so we keep kernels untemplated and suffix them
    with the dtype instead: ``im2col_f32`` / ``im2col_f64``.
    """
    return module(source_name).get_function(kernel_name)


def launch_1d(kernel, n: int, args: tuple, threads: int = 256) -> None:
    """Launch ``kernel`` over ``n`` independent items with a grid-stride-free 1-D grid."""
    if n == 0:
        return
    blocks = (n + threads - 1) // threads
    kernel((blocks,), (threads,), args)


def dtype_suffix(dtype) -> str:
    """``'f32'`` or ``'f64'``: the suffix of the kernel variant for an array's dtype."""
    name = str(dtype)
    if name == "float32":
        return "f32"
    if name == "float64":
        return "f64"
    raise TypeError(f"CUDA kernels take float32 or float64 arrays, got {name}")
