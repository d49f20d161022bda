r"""Resampling of the last two axes, the textbook way: Y = A_h X A_w^T.

Each axis is a linear map A (n_out x n_in) with one or two non-zeros per row:

    nearest    y[o] = x[src(o)],                     src(o) = min(floor(o n_in / n_out), n_in - 1)
    bilinear   y[o] = (1 - l(o)) x[i0(o)] + l(o) x[i1(o)]

with the bilinear source coordinate (PyTorch's ``area_pixel_compute_source_index``)

    align_corners=True     c(o) = o (n_in - 1) / (n_out - 1)             (0 if n_out = 1)
    align_corners=False    c(o) = max((o + 1/2) n_in / n_out - 1/2, 0)

and i0 = min(floor(c), n_in - 1), i1 = min(i0 + 1, n_in - 1), l = c - i0. The gradient is the
adjoint, G_X = A_h^T G_Y A_w. As in PyTorch, the nearest scale n_in / n_out is a float32 and
the bilinear coordinates are computed in the input's dtype.
"""
from __future__ import annotations

import numpy as np

from .. import _cuda


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if not isinstance(v, (tuple, list)) else (int(v[0]), int(v[1]))


def _nearest_source(n_in: int, n_out: int) -> np.ndarray:
    o = np.arange(n_out)
    if n_out == n_in:
        return o
    if n_out == 2 * n_in:
        return o // 2
    scale = np.float32(n_in) / np.float32(n_out)
    return np.minimum(np.floor(o.astype(np.float32) * scale).astype(np.int64), n_in - 1)


def _bilinear_matrix(n_in: int, n_out: int, align_corners: bool, dtype) -> np.ndarray:
    """A (n_out, n_in): A[o, i0(o)] += 1 - l(o), A[o, i1(o)] += l(o)."""
    ft = np.dtype(dtype).type
    o = np.arange(n_out)
    if align_corners:
        c = (ft(n_in - 1) / ft(n_out - 1) if n_out > 1 else ft(0)) * o.astype(dtype)
    else:
        c = np.maximum((np.float64(ft(n_in) / ft(n_out)) * (o + 0.5) - 0.5).astype(dtype), ft(0))
    i0 = np.minimum(np.floor(c).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    lam = np.clip(c - i0.astype(dtype), ft(0), ft(1)).astype(dtype)
    a = np.zeros((n_out, n_in), dtype=dtype)
    np.add.at(a, (o, i0), ft(1) - lam)      # i0 = i1 at the last pixel: the two weights add
    np.add.at(a, (o, i1), lam)
    return a


def upsample_nearest2d(x, size):
    """y[..., o, q] = x[..., src_h(o), src_w(q)]."""
    xp = _cuda.get_array_module(x)
    (oh, ow), (h, w) = _pair(size), x.shape[-2:]
    rows, cols = xp.asarray(_nearest_source(h, oh)), xp.asarray(_nearest_source(w, ow))
    return x[..., rows[:, None], cols[None, :]]


def upsample_nearest2d_backward(gy, in_size):
    """gx[..., i, j] = sum of gy[..., o, q] over src_h(o) = i, src_w(q) = j."""
    xp = _cuda.get_array_module(gy)
    (h, w), (oh, ow) = _pair(in_size), gy.shape[-2:]
    rows, cols = xp.asarray(_nearest_source(h, oh)), xp.asarray(_nearest_source(w, ow))
    target = (rows[:, None] * w + cols[None, :]).ravel()
    planes = gy.reshape(-1, oh * ow)
    gx = xp.zeros((planes.shape[0], h * w), dtype=gy.dtype)
    for plane in range(planes.shape[0]):
        xp.add.at(gx[plane], target, planes[plane])
    return gx.reshape(gy.shape[:-2] + (h, w))


def upsample_bilinear2d(x, size, align_corners=False):
    """Y = A_h X A_w^T."""
    xp = _cuda.get_array_module(x)
    (oh, ow), (h, w) = _pair(size), x.shape[-2:]
    a_h = xp.asarray(_bilinear_matrix(h, oh, align_corners, x.dtype))
    a_w = xp.asarray(_bilinear_matrix(w, ow, align_corners, x.dtype))
    return a_h @ x @ a_w.T


def upsample_bilinear2d_backward(gy, in_size, align_corners=False):
    """G_X = A_h^T G_Y A_w."""
    xp = _cuda.get_array_module(gy)
    (h, w), (oh, ow) = _pair(in_size), gy.shape[-2:]
    a_h = xp.asarray(_bilinear_matrix(h, oh, align_corners, gy.dtype))
    a_w = xp.asarray(_bilinear_matrix(w, ow, align_corners, gy.dtype))
    return a_h.T @ gy @ a_w
