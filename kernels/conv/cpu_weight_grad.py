r"""The CPU weight gradient of a convolution, dL/dW = G^T @ cols.

Since Y = cols @ W^T is linear in W, with G = dL/dY as rows (N*Ho*Wo, O),

    dL/dW = G^T @ cols         (O, kh*kw*C)     -> reshaped to (O, C, kh, kw),

i.e. ``gw[o, c, i, j] = sum_{n,p,q} gy[n, o, p, q] xpad[n, c, s_h p + d_h i, s_w q + d_w j]``.
``cols`` is the forward's im2col matrix: kept from the forward (``Columns``) or built again
here. The batch is split across threads; each slice's product is summed. For stride 1 down
the rows the forward keeps row windows instead (``cpu_forward``'s kernel rows), and the
gradient of kernel row i is ``cols_i^T @ G`` with ``cols_i`` that row's view of them.
"""
from __future__ import annotations

import numpy as np

from .. import threads
from .cpu_forward import Columns, _chunks, _columns_shape, _im2col_cpu, _im2col_planes_cpu, \
    _kernel_row, _nhwc_rows, _planes, _row_windows_cpu, _rows
from .geometry import _Geometry


def _backward_weight_cpu(gy: np.ndarray, x: np.ndarray | None, geo: _Geometry,
                         columns: Columns | None = None) -> np.ndarray:
    """``G^T @ cols``, the batch split across threads, each slice's product summed."""
    if geo.n * geo.ho * geo.wo == 0 or geo.field_size == 0:
        return np.zeros((geo.o, geo.c, geo.kh, geo.kw), dtype=gy.dtype)
    l = geo.ho * geo.wo
    planes, rows = _planes(geo), _rows(geo)

    def images(lo: int, hi: int) -> np.ndarray:
        if columns is None:
            return _backward_weight_images(gy[lo:hi], x[lo:hi], geo.batch(hi - lo))
        if planes:
            return _planes_weight_product(gy[lo:hi], columns.matrix[lo:hi], geo)
        if rows:
            return _rows_weight_product(gy[lo:hi], columns.matrix[lo:hi], geo.batch(hi - lo))
        gmat = np.empty(((hi - lo) * l, geo.o), dtype=gy.dtype)
        _nhwc_rows(gy[lo:hi], geo.batch(hi - lo), gmat)
        return np.matmul(gmat.T, columns.matrix[lo * l : hi * l])

    work = geo.n * l * (geo.field_size + geo.o) * gy.itemsize
    gw_mat = threads.parallel_sum(geo.n, images, work)
    if planes:  # columns (c, i, j): the weight's own order
        return gw_mat.reshape(geo.o, geo.c, geo.kh, geo.kw)
    if rows:  # (i, (j, c), o)
        return np.ascontiguousarray(gw_mat.reshape(geo.kh, geo.kw, geo.c, geo.o)
                                    .transpose(3, 2, 0, 1))
    return np.ascontiguousarray(gw_mat.reshape(geo.o, geo.kh, geo.kw, geo.c).transpose(0, 3, 1, 2))


def _planes_weight_product(gy: np.ndarray, cols: np.ndarray, geo: _Geometry) -> np.ndarray:
    """``sum_n gy[n] cols[n]^T`` (O, C*kh*kw) for the images of ``gy`` and their planes
    ``cols`` (n, C*kh*kw, Ho*Wo): each image's (O, Ho*Wo) gradient as it is stored times the
    transposed planes, summed over the images."""
    n = gy.shape[0]
    gmat = gy[:, :, : geo.ho, : geo.wo].reshape(n, geo.o, geo.ho * geo.wo)
    return np.matmul(gmat, cols.transpose(0, 2, 1)).sum(axis=0)


def _rows_weight_product(gy: np.ndarray, cols: np.ndarray, geo: _Geometry) -> np.ndarray:
    """``sum_n cols_i[n]^T @ G[n]`` for each kernel row i, (kh, kw*C, O), from the images'
    row windows ``cols`` (n, Hp, Wo, kw*C) and gradient rows G[n] (Ho*Wo, O)."""
    n, l = gy.shape[0], geo.ho * geo.wo
    gmat = np.empty((n * l, geo.o), dtype=gy.dtype)
    _nhwc_rows(gy, geo, gmat)
    gmat = gmat.reshape(n, l, geo.o)
    gw = np.zeros((geo.kh, cols.shape[-1], geo.o), dtype=gy.dtype)
    part = np.empty_like(gw[0])
    for i in range(geo.kh):
        rows_i = _kernel_row(cols, geo, i)
        for k in range(n):  # a (kw*C, Ho*Wo) @ (Ho*Wo, O) product per image
            np.matmul(rows_i[k].T, gmat[k], out=part)
            gw[i] += part
    return gw


def _backward_weight_images(gy: np.ndarray, x: np.ndarray, geo: _Geometry) -> np.ndarray:
    """``G^T @ im2col(x)`` (O, kh*kw*C), or (O, C*kh*kw) for an input of few channels, or by
    kernel rows (kh, kw*C, O) for stride 1 down the rows, for the images of ``x``, on the
    calling thread."""
    gw_mat = np.zeros((geo.o, geo.field_size), dtype=gy.dtype)
    chunks, step = _chunks(geo, x.itemsize)
    l = geo.ho * geo.wo
    if _rows(geo):
        cols_buf = np.empty((step,) + _columns_shape(geo)[1:], dtype=x.dtype)
        gw_rows = 0
        for lo, hi in chunks:
            cols = cols_buf[: hi - lo]
            _row_windows_cpu(x[lo:hi], geo, cols)
            gw_rows = gw_rows + _rows_weight_product(gy[lo:hi], cols, geo.batch(hi - lo))
        return gw_rows
    if _planes(geo):
        cols_buf = np.empty((step, geo.field_size, l), dtype=x.dtype)
        for lo, hi in chunks:
            cols = cols_buf[: hi - lo]
            _im2col_planes_cpu(x[lo:hi], geo, cols)
            gw_mat += _planes_weight_product(gy[lo:hi], cols, geo)
        return gw_mat
    cols_buf = np.empty((step * l, geo.field_size), dtype=x.dtype)
    gmat_buf = np.empty((step * l, geo.o), dtype=x.dtype)
    part = np.empty_like(gw_mat) if len(chunks) > 1 else gw_mat
    for lo, hi in chunks:
        m = (hi - lo) * l
        cols, gmat = cols_buf[:m], gmat_buf[:m]
        _im2col_cpu(x[lo:hi], geo, cols)
        _nhwc_rows(gy[lo:hi], geo, gmat)
        np.matmul(gmat.T, cols, out=part)  # dL/dW = G^T @ cols
        if part is not gw_mat:
            gw_mat += part
    return gw_mat
