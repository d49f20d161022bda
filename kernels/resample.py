"""Resampling of the last two axes to a given size, as ``torch.nn.functional.interpolate``.

Both modes are separable: resampling an image is resampling its rows, then its columns, and each
axis is a sparse linear map ``A`` (``n_out x n_in``) with one or two non-zeros per row:

    nearest     y[o] = x[src(o)],            src(o) = min(floor(o * (n_in / n_out)), n_in - 1)
    bilinear    y[o] = (1 - l(o)) x[i0(o)] + l(o) x[i1(o)]

so ``Y = A_h X A_w^T`` and the gradient is the adjoint ``G_X = A_h^T G_Y A_w``. Because the source
indices grow monotonically with ``o``, each input position is read by a *contiguous* run of
outputs, and ``A^T g`` is a segment sum over these runs rather than a general scatter.

Bilinear source coordinates (PyTorch's ``area_pixel_compute_source_index``):

    align_corners=True     c(o) = o * (n_in - 1) / (n_out - 1)            (0 if n_out == 1)
    align_corners=False    c(o) = max((o + 1/2) * n_in / n_out - 1/2, 0)  (pixel centres aligned)

then ``i0 = min(floor(c), n_in - 1)``, ``i1 = min(i0 + 1, n_in - 1)``, ``l = c - i0``. The clamp
to 0 matters near the top/left border when upsampling, where ``c`` would be negative.

The index arithmetic follows PyTorch's CPU implementation: the nearest scale ``n_in / n_out`` is a
float32 (so e.g. 2 -> 82 picks a different pixel than exact rational arithmetic would at output 41),
and bilinear coordinates are computed in the input's dtype.
"""
from __future__ import annotations

import numpy as np

from . import _cuda, threads
from . import reference

Size = int | tuple[int, int]


def _size_pair(size: Size, name: str) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        out = (int(size), int(size))
    else:
        out = tuple(int(n) for n in size)
        if len(out) != 2:
            raise ValueError(f"{name} must be an int or a pair (H, W), got {size!r}")
    if min(out) < 1:
        raise ValueError(f"{name} must be positive, got {out}")
    return out  # type: ignore[return-value]


def _check_input(shape, op: str) -> None:
    if len(shape) < 2:
        raise ValueError(f"{op} needs an array of at least 2 dimensions (..., H, W), got {shape}")
    if min(shape[-2:]) < 1:
        raise ValueError(f"{op}: cannot resample an empty input of shape {tuple(shape)}")


def nearest_source_index(n_in: int, n_out: int) -> np.ndarray:
    """``src[o]`` for ``o < n_out``: PyTorch's (legacy, OpenCV-compatible) 'nearest' rule."""
    o = np.arange(n_out, dtype=np.int64)
    if n_out == n_in:
        return o
    if n_out == 2 * n_in:
        return o >> 1
    scale = np.float32(n_in) / np.float32(n_out)
    src = np.floor(o.astype(np.float32) * scale).astype(np.int64)
    return np.minimum(src, n_in - 1)


def linear_source_weights(n_in: int, n_out: int, align_corners: bool, dtype):
    """``(i0, i1, w0, w1)``, each of length ``n_out``: output ``o`` is ``w0 x[i0] + w1 x[i1]``."""
    ft = np.dtype(dtype).type
    o = np.arange(n_out)
    if align_corners:
        scale = ft(n_in - 1) / ft(n_out - 1) if n_out > 1 else ft(0)
        src = scale * o.astype(dtype)
    else:
        scale = ft(n_in) / ft(n_out)
        src = (np.float64(scale) * (o + 0.5) - 0.5).astype(dtype)
        src = np.maximum(src, ft(0))
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    w1 = np.clip(src - i0.astype(dtype), ft(0), ft(1)).astype(dtype)
    w0 = (ft(1) - w1).astype(dtype)
    return i0, i1, w0, w1


def _as_slice(ix: np.ndarray):
    """``ix`` as a basic slice when it is an arithmetic progression (a strided view is much
    cheaper than a gather), else ``ix`` itself."""
    if ix.size == 1:
        return slice(int(ix[0]), int(ix[0]) + 1)
    if ix.size > 1:
        step = int(ix[1] - ix[0])
        if step > 0 and np.all(np.diff(ix) == step):
            return slice(int(ix[0]), int(ix[-1]) + 1, step)
    return ix


def _phases(idx: np.ndarray, n: int):
    """Split the monotone map ``o -> idx[o]`` (outputs to ``n`` inputs) into phases: phase ``t``
    pairs the ``t``-th output of every input's run with that input. Within one phase all sources
    and all destinations are distinct, so a scatter-add over a phase has no collisions, and for
    an integer scale factor every phase is a strided slice.

    Yields ``(inputs, outputs)`` index sets (slices where possible).
    """
    targets = np.arange(n)
    starts = np.searchsorted(idx, targets, side="left")
    counts = np.searchsorted(idx, targets, side="right") - starts
    for t in range(int(counts.max(initial=0))):
        inputs = np.flatnonzero(counts > t)
        yield _as_slice(inputs), _as_slice(starts[inputs] + t)


def _at(axis: int, ndim: int, ix):
    where = [slice(None)] * ndim
    where[axis] = ix
    return tuple(where)


def _read(a, ix, axis: int):
    # np.take is several times faster than fancy indexing along the last axes.
    return a[_at(axis, a.ndim, ix)] if isinstance(ix, slice) else np.take(a, ix, axis=axis)


def _gather(x, idx: np.ndarray, axis: int):
    """``x.take(idx, axis)`` for a non-decreasing ``idx``, phase by phase (strided copies for
    integer scale factors)."""
    axis = axis % x.ndim
    shape = list(x.shape)
    shape[axis] = len(idx)
    y = np.empty(shape, dtype=x.dtype)
    for inputs, outputs in _phases(idx, x.shape[axis]):
        y[_at(axis, x.ndim, outputs)] = _read(x, inputs, axis)
    return y


def _segment_sum(a, idx: np.ndarray, n: int, axis: int):
    """``out[..., i, ...] = sum_{o : idx[o] = i} a[..., o, ...]`` along ``axis``, for a
    non-decreasing ``idx``: the transpose of the gather ``a = out.take(idx, axis)``.

    One slice-add per phase (see ``_phases``); inputs that no output reads (when downsampling)
    stay zero. This avoids both ``np.add.at`` and ``np.add.reduceat``, which are slow along the
    inner axes.
    """
    axis = axis % a.ndim
    shape = list(a.shape)
    shape[axis] = n
    out = np.zeros(shape, dtype=a.dtype)
    for inputs, outputs in _phases(idx, n):
        out[_at(axis, a.ndim, inputs)] += _read(a, outputs, axis)
    return out


def _row_weights(wt, ndim_tail: int):
    """Reshape a per-row weight vector to broadcast against ``(..., rows, cols)``."""
    return wt.reshape((-1,) + (1,) * ndim_tail)


# --------------------------------------------------------------------------------------------
# Nearest
# --------------------------------------------------------------------------------------------


def upsample_nearest2d(x, size: Size):
    """Nearest-neighbour resampling of ``x`` (``(..., H, W)``) to ``size = (H_out, W_out)``:

        y[..., o, q] = x[..., src_h(o), src_w(q)]
        src(o) = min(floor(o * n_in / n_out), n_in - 1)

    (PyTorch's ``mode='nearest'``; ``size`` may also be smaller than the input).
    """
    if reference.enabled():
        return reference.resample.upsample_nearest2d(x, size)
    _check_input(tuple(x.shape), "upsample_nearest2d")
    oh, ow = _size_pair(size, "size")
    h, w = x.shape[-2:]
    rows, cols = nearest_source_index(h, oh), nearest_source_index(w, ow)
    if _cuda.is_cupy_array(x):
        return _nearest_cuda(x, None, (h, w), (oh, ow), rows, cols)
    return _gather(_gather(x, rows, axis=-2), cols, axis=-1)


def upsample_nearest2d_backward(gy, in_size: Size):
    """Gradient of :func:`upsample_nearest2d`: every input pixel receives the sum of the
    gradients of the output pixels that copied it,

        gx[..., i, j] = sum_{o : src_h(o) = i} sum_{q : src_w(q) = j} gy[..., o, q].
    """
    if reference.enabled():
        return reference.resample.upsample_nearest2d_backward(gy, in_size)
    _check_input(tuple(gy.shape), "upsample_nearest2d_backward")
    h, w = _size_pair(in_size, "in_size")
    oh, ow = gy.shape[-2:]
    rows, cols = nearest_source_index(h, oh), nearest_source_index(w, ow)
    if _cuda.is_cupy_array(gy):
        return _nearest_cuda(None, gy, (h, w), (oh, ow), rows, cols)
    return _segment_sum(_segment_sum(gy, rows, h, axis=-2), cols, w, axis=-1)


# --------------------------------------------------------------------------------------------
# Bilinear
# --------------------------------------------------------------------------------------------


# Up to this input size per axis, the bilinear maps run as dense matrix products (BLAS): with
# 2 * n_in flops per output they beat the gathers' several memory passes on a CPU. Beyond it,
# the sparse form (two gathers per axis) wins.
_DENSE_MAX_SIZE = 128


def _interp_matrix(n_in: int, table) -> np.ndarray:
    """The dense ``(n_out, n_in)`` matrix ``A`` of one axis: ``A[o, i0] += w0``, ``A[o, i1] += w1``
    (``i0 = i1`` at the last pixel, hence the accumulation)."""
    i0, i1, w0, w1 = table
    a = np.zeros((len(i0), n_in), dtype=w0.dtype)
    rows = np.arange(len(i0))
    np.add.at(a, (rows, i0), w0)
    np.add.at(a, (rows, i1), w1)
    return a


def _use_dense(x, h: int, w: int) -> bool:
    # The products also multiply every pixel by the zeros of A, and 0 * inf = NaN would smear
    # one non-finite pixel over its whole row; such inputs take the sparse path.
    return max(h, w) <= _DENSE_MAX_SIZE and bool(np.isfinite(x).all())


def upsample_bilinear2d(x, size: Size, align_corners: bool = False):
    """Bilinear resampling of ``x`` (``(..., H, W)``) to ``size = (H_out, W_out)``:

        y[o, q] = (1-a) (1-b) x[i0, j0] + (1-a) b x[i0, j1] + a (1-b) x[i1, j0] + a b x[i1, j1]

    with ``(i0, i1, a)`` the source rows and weight of output row ``o`` and ``(j0, j1, b)`` those
    of output column ``q`` (see the module docstring for the source coordinates). Computed as a
    1-D interpolation along the width, then along the height (``Y = A_h (X A_w^T)``), which is the
    same sum grouped as PyTorch groups it; for small images as dense products with the matrices
    ``A``, else with gathers.
    """
    if reference.enabled():
        return reference.resample.upsample_bilinear2d(x, size, align_corners)
    _check_input(tuple(x.shape), "upsample_bilinear2d")
    oh, ow = _size_pair(size, "size")
    h, w = x.shape[-2:]
    rh = linear_source_weights(h, oh, align_corners, x.dtype)
    rw = linear_source_weights(w, ow, align_corners, x.dtype)
    if _cuda.is_cupy_array(x):
        return _bilinear_cuda(x, None, (h, w), (oh, ow), rh, rw)
    if _use_dense(x, h, w):
        a_h, a_w = _interp_matrix(h, rh), _interp_matrix(w, rw)
        t = threads.matmul(x.reshape(-1, w), a_w.T).reshape(x.shape[:-1] + (ow,))  # X A_w^T
        return threads.matmul(a_h, t)                                       # A_h X A_w^T
    i0, i1, w0, w1 = rw
    t = np.take(x, i0, axis=-1) * w0 + np.take(x, i1, axis=-1) * w1            # (..., H, W_out)
    i0, i1, w0, w1 = rh
    return (_row_weights(w0, 1) * np.take(t, i0, axis=-2)
            + _row_weights(w1, 1) * np.take(t, i1, axis=-2))


def upsample_bilinear2d_backward(gy, in_size: Size, align_corners: bool = False):
    """Gradient of :func:`upsample_bilinear2d`, its exact adjoint ``G_X = A_h^T G_Y A_w``:

        gt[..., i, q] = sum_{o : i0(o) = i} (1 - a_o) gy[..., o, q]
                      + sum_{o : i1(o) = i} a_o gy[..., o, q]

    and the same along the width from ``gt`` to ``gx``. Each sum is a segment sum because
    ``i0`` and ``i1`` are non-decreasing.
    """
    if reference.enabled():
        return reference.resample.upsample_bilinear2d_backward(gy, in_size, align_corners)
    _check_input(tuple(gy.shape), "upsample_bilinear2d_backward")
    h, w = _size_pair(in_size, "in_size")
    oh, ow = gy.shape[-2:]
    rh = linear_source_weights(h, oh, align_corners, gy.dtype)
    rw = linear_source_weights(w, ow, align_corners, gy.dtype)
    if _cuda.is_cupy_array(gy):
        return _bilinear_cuda(None, gy, (h, w), (oh, ow), rh, rw)
    if _use_dense(gy, h, w):
        a_h, a_w = _interp_matrix(h, rh), _interp_matrix(w, rw)
        gt = threads.matmul(a_h.T, gy)                                      # A_h^T G_Y
        return threads.matmul(gt.reshape(-1, ow), a_w).reshape(gt.shape[:-1] + (w,))
    i0, i1, w0, w1 = rh
    gt = (_segment_sum(gy * _row_weights(w0, 1), i0, h, axis=-2)
          + _segment_sum(gy * _row_weights(w1, 1), i1, h, axis=-2))        # (..., H, W_out)
    i0, i1, w0, w1 = rw
    return _segment_sum(gt * w0, i0, w, axis=-1) + _segment_sum(gt * w1, i1, w, axis=-1)


# --------------------------------------------------------------------------------------------
# CUDA path (kernels/cuda/resample.cu). The 1-D index/weight tables are built on the host with
# the functions above (so both paths pick the same pixels), and the backward kernels gather over
# each input's run of outputs [start, end), found by a binary search of the monotone index.
# --------------------------------------------------------------------------------------------


def _runs(idx: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(start, end)`` of the run of outputs reading each of the ``n`` inputs."""
    targets = np.arange(n)
    return (np.searchsorted(idx, targets, side="left").astype(np.int64),
            np.searchsorted(idx, targets, side="right").astype(np.int64))


def _nearest_cuda(x, gy, in_hw, out_hw, rows, cols):
    import cupy

    (h, w), (oh, ow) = in_hw, out_hw
    i64 = np.int64
    if x is not None:
        x = cupy.ascontiguousarray(x)
        planes = int(np.prod(x.shape[:-2], dtype=np.int64))
        y = cupy.empty(x.shape[:-2] + (oh, ow), dtype=x.dtype)
        kernel = _cuda.function("resample.cu",
                                f"upsample_nearest2d_forward_{_cuda.dtype_suffix(x.dtype)}")
        args = (x, y, cupy.asarray(rows), cupy.asarray(cols), i64(planes), i64(h), i64(w),
                i64(oh), i64(ow))
        _cuda.launch_1d(kernel, y.size, args)
        return y
    gy = cupy.ascontiguousarray(gy)
    planes = int(np.prod(gy.shape[:-2], dtype=np.int64))
    gx = cupy.empty(gy.shape[:-2] + (h, w), dtype=gy.dtype)
    (rs, re), (cs, ce) = _runs(rows, h), _runs(cols, w)
    kernel = _cuda.function("resample.cu",
                            f"upsample_nearest2d_backward_{_cuda.dtype_suffix(gy.dtype)}")
    args = (gy, gx, cupy.asarray(rs), cupy.asarray(re), cupy.asarray(cs), cupy.asarray(ce),
            i64(planes), i64(h), i64(w), i64(oh), i64(ow))
    _cuda.launch_1d(kernel, gx.size, args)
    return gx


def _bilinear_cuda(x, gy, in_hw, out_hw, rh, rw):
    import cupy

    (h, w), (oh, ow) = in_hw, out_hw
    i64 = np.int64
    tables = tuple(cupy.asarray(t) for t in rh + rw)   # h0, h1, hw0, hw1, w0, w1, ww0, ww1
    if x is not None:
        x = cupy.ascontiguousarray(x)
        planes = int(np.prod(x.shape[:-2], dtype=np.int64))
        y = cupy.empty(x.shape[:-2] + (oh, ow), dtype=x.dtype)
        kernel = _cuda.function("resample.cu",
                                f"upsample_bilinear2d_forward_{_cuda.dtype_suffix(x.dtype)}")
        args = (x, y) + tables + (i64(planes), i64(h), i64(w), i64(oh), i64(ow))
        _cuda.launch_1d(kernel, y.size, args)
        return y
    gy = cupy.ascontiguousarray(gy)
    planes = int(np.prod(gy.shape[:-2], dtype=np.int64))
    gx = cupy.empty(gy.shape[:-2] + (h, w), dtype=gy.dtype)
    runs = tuple(cupy.asarray(r) for r in
                 _runs(rh[0], h) + _runs(rh[1], h) + _runs(rw[0], w) + _runs(rw[1], w))
    kernel = _cuda.function("resample.cu",
                            f"upsample_bilinear2d_backward_{_cuda.dtype_suffix(gy.dtype)}")
    args = (gy, gx) + tables + runs + (i64(planes), i64(h), i64(w), i64(oh), i64(ow))
    _cuda.launch_1d(kernel, gx.size, args)
    return gx
