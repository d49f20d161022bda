"""Which path computes a convolution: the 1 x 1 shortcut, the CUDA kernels or the CPU code.

The public functions of ``kernels.conv`` check their arguments, build the ``_Geometry`` and
call one of ``_forward``, ``_backward_input`` and ``_backward_weight`` here, which choose by
the array's device and the convolution's shape.
"""
from __future__ import annotations

from .. import _cuda, threads
from .cpu_forward import Columns, _forward_cpu
from .cpu_input_grad import _backward_input_cpu
from .cpu_weight_grad import _backward_weight_cpu
from .cuda import _backward_input_cuda, _backward_weight_cuda, _forward_cuda
from .geometry import _Geometry


def _pointwise(geo: _Geometry) -> bool:
    """A 1 x 1 convolution with stride 1 and no padding: per image, the matrix product
    y[n] = W x[n] of the (O, C) weight with the (C, H*W) image -- no im2col, no layout change,
    on either device."""
    # (ho, wo) == (h, w): a transposed one may add output_padding rows
    return (geo.kh == geo.kw == 1 and geo.sh == geo.sw == 1 and geo.ph == geo.pw == 0
            and (geo.ho, geo.wo) == (geo.h, geo.w))


def _forward(x, w, b, geo: _Geometry):
    """y = conv(x, w) + b."""
    if _pointwise(geo):
        y = threads.matmul(w.reshape(geo.o, geo.c), x.reshape(geo.n, geo.c, geo.h * geo.w))
        if b is not None:
            y += b.reshape(1, geo.o, 1)
        return y.reshape(geo.n, geo.o, geo.h, geo.w)
    if _cuda.is_cupy_array(x):
        return _forward_cuda(x, w, b, geo)
    return _forward_cpu(x, w, b, geo)


def _backward_input(gy, w, geo: _Geometry, b=None):
    """gx = col2im(G @ W) (+ b): the input gradient, or a transposed convolution."""
    if _pointwise(geo):  # gx[n] = W^T gy[n]
        gx = threads.matmul(w.reshape(geo.o, geo.c).T, gy.reshape(geo.n, geo.o, geo.h * geo.w))
        if b is not None:
            gx += b.reshape(1, geo.c, 1)
        return gx.reshape(geo.n, geo.c, geo.h, geo.w)
    if _cuda.is_cupy_array(gy):
        gx = _backward_input_cuda(gy, w, geo)
        if b is not None:
            gx += b.reshape(1, -1, 1, 1)
        return gx
    return _backward_input_cpu(gy, w, geo, b)


def _backward_weight(gy, x, geo: _Geometry, columns: Columns | None = None):
    """gw = G^T @ cols, from the saved ``columns`` when given."""
    if columns is not None:
        return _backward_weight_cpu(gy, None, geo, columns)
    if _pointwise(geo):  # gw = sum_n gy[n] x[n]^T, a product over the (n, pixel) pairs
        xp = _cuda.get_array_module(x)
        gy3 = gy.reshape(geo.n, geo.o, geo.h * geo.w)
        x3 = x.reshape(geo.n, geo.c, geo.h * geo.w)

        def images(lo: int, hi: int):
            return xp.tensordot(gy3[lo:hi], x3[lo:hi], axes=([0, 2], [0, 2]))

        if _cuda.is_cupy_array(x) or geo.n == 0:
            return images(0, geo.n).reshape(geo.o, geo.c, 1, 1)
        return threads.parallel_sum(geo.n, images, 4 * (gy.nbytes + x.nbytes)).reshape(
            geo.o, geo.c, 1, 1)
    if _cuda.is_cupy_array(x):
        return _backward_weight_cuda(gy, x, geo)
    return _backward_weight_cpu(gy, x, geo)
