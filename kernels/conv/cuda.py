"""The CUDA convolution: im2col / col2im kernels in ``cuda/conv.cu``, products with
``cupy.matmul`` (cuBLAS).

On the GPU the layout stays NCHW and the im2col matrix is stored transposed and
channel-major, cols[(c, i, j), (n, p, q)] of shape (C*kh*kw, N*Ho*Wo): a thread per entry
writes consecutive (p, q) positions, so its stores are coalesced, and the weight needs no
reordering (w.reshape(O, C*kh*kw) is already the matrix). col2im is a gather: one thread per
input pixel sums the entries of the windows that cover it.
"""
from __future__ import annotations

import numpy as np

from .. import _cuda
from .geometry import _Geometry

_CUDA_SOURCE = "conv.cu"

# Largest im2col matrix built at once on the GPU, so that a big batch fits in device memory.
_CUDA_COLS_BUDGET_BYTES = 256 << 20


def _cuda_geometry_args(geo: _Geometry, n: int):
    i64 = np.int64
    return (
        i64(n), i64(geo.c), i64(geo.h), i64(geo.w), i64(geo.kh), i64(geo.kw),
        i64(geo.sh), i64(geo.sw), i64(geo.ph), i64(geo.pw), i64(geo.dh), i64(geo.dw),
        i64(geo.ho), i64(geo.wo),
    )


def _cuda_chunks(geo: _Geometry, itemsize: int):
    """Batch slices [lo, hi) whose im2col matrices fit ``_CUDA_COLS_BUDGET_BYTES``; the
    products stay big enough to keep cuBLAS busy."""
    per_image = max(1, geo.ho * geo.wo * geo.field_size * itemsize)
    step = max(1, min(geo.n, _CUDA_COLS_BUDGET_BYTES // per_image))
    return [(lo, min(geo.n, lo + step)) for lo in range(0, geo.n, step)]


def _im2col_cuda(x, geo: _Geometry, lo: int, hi: int):
    import cupy

    n = hi - lo
    cols = cupy.empty((geo.field_size, n * geo.ho * geo.wo), dtype=x.dtype)
    kern = _cuda.function(_CUDA_SOURCE, f"im2col_{_cuda.dtype_suffix(x.dtype)}")
    _cuda.launch_1d(kern, cols.size, (x[lo:hi], cols, *_cuda_geometry_args(geo, n)))
    return cols


def _forward_cuda(x, w, b, geo: _Geometry):
    import cupy

    x = cupy.ascontiguousarray(x)
    wmat = cupy.ascontiguousarray(w).reshape(geo.o, geo.field_size)
    y = cupy.empty((geo.n, geo.o, geo.ho, geo.wo), dtype=x.dtype)
    if y.size == 0:
        return y
    for lo, hi in _cuda_chunks(geo, x.itemsize):
        cols = _im2col_cuda(x, geo, lo, hi)
        ymat = cupy.matmul(wmat, cols)  # (O, n*Ho*Wo)
        y[lo:hi] = ymat.reshape(geo.o, hi - lo, geo.ho, geo.wo).transpose(1, 0, 2, 3)
    if b is not None:
        y += b.reshape(1, geo.o, 1, 1)
    return y


def _backward_input_cuda(gy, w, geo: _Geometry):
    import cupy

    if geo.n * geo.c * geo.h * geo.w == 0 or geo.ho * geo.wo == 0 or geo.o == 0:
        return cupy.zeros((geo.n, geo.c, geo.h, geo.w), dtype=gy.dtype)
    gx = cupy.empty((geo.n, geo.c, geo.h, geo.w), dtype=gy.dtype)
    wmat = cupy.ascontiguousarray(w).reshape(geo.o, geo.field_size)
    kern = _cuda.function(_CUDA_SOURCE, f"col2im_{_cuda.dtype_suffix(gy.dtype)}")
    for lo, hi in _cuda_chunks(geo, gy.itemsize):
        n = hi - lo
        # G^T as (O, n*Ho*Wo), matching the (n, p, q) column order of cols.
        gmat = cupy.ascontiguousarray(gy[lo:hi, :, : geo.ho, : geo.wo].transpose(1, 0, 2, 3))
        # (C*kh*kw, n*Ho*Wo)
        gcols = cupy.matmul(wmat.T, gmat.reshape(geo.o, n * geo.ho * geo.wo))
        # col2im is a gather: one thread per input pixel sums the entries of the windows that
        # cover it and writes every pixel once, so gx needs no zeroing and no atomics.
        gx_chunk = gx[lo:hi]
        _cuda.launch_1d(kern, gx_chunk.size, (gcols, gx_chunk, *_cuda_geometry_args(geo, n)))
    return gx


def _backward_weight_cuda(gy, x, geo: _Geometry):
    import cupy

    x = cupy.ascontiguousarray(x)
    gw = cupy.zeros((geo.o, geo.field_size), dtype=x.dtype)
    for lo, hi in _cuda_chunks(geo, x.itemsize):
        n = hi - lo
        if n * geo.ho * geo.wo == 0:
            continue
        cols = _im2col_cuda(x, geo, lo, hi)
        gmat = cupy.ascontiguousarray(gy[lo:hi, :, : geo.ho, : geo.wo].transpose(1, 0, 2, 3))
        gw += cupy.matmul(gmat.reshape(geo.o, n * geo.ho * geo.wo), cols.T)  # G^T @ cols
    return gw.reshape(geo.o, geo.c, geo.kh, geo.kw)
