r"""The CPU forward pass: im2col and one matrix product, in NHWC or on NCHW planes.

**im2col.** Copy every receptive field -- the (kh, kw, C) block of ``xpad`` that one output
pixel reads -- into one row of a matrix ``cols`` of shape (N*Ho*Wo, kh*kw*C). Reshape the
weights to ``W`` of shape (O, kh*kw*C) with the same (i, j, c) order. Then the convolution is
ONE matrix product,

    Y = cols @ W^T            (N*Ho*Wo, O),

which BLAS runs at close to the machine's peak. The copy costs memory traffic (each input
pixel is copied about kh*kw/(s_h*s_w) times) but turns a 7-deep loop nest into the one
operation that every CPU library has tuned for years.

**Layout.** The public layout is NCHW, but this path works in NHWC inside: with channels last,
a receptive field (kh, kw, C) is made of kh runs of kw*C contiguous numbers, so the im2col copy
moves long contiguous runs instead of kw-long scraps, and the product ``cols @ W^T`` directly
yields NHWC output rows. For an input of few channels (``_planes``: an RGB or grey image) the
runs would be scraps again, so im2col works on NCHW image *planes* instead, and the per-image
products ``W cols[n]`` already give NCHW.

**Kernel rows.** With stride 1 down the rows (every 3x3 "same" convolution of a ResNet, a
VGG or a CycleGAN generator) a window's kh rows are rows of ``xpad`` that the next output row
reuses, and a full im2col copies every input pixel kh*kw times. Instead, ``_row_windows_cpu``
copies only the kw taps of each row, into ``cols`` of shape (n, Hp, Wo, kw*C) -- kw/s_w times
the input -- and the product is a sum over the kernel rows,

    Y = sum_i  cols[:, d_h i : d_h i + Ho] @ W_i^T      (W_i: row i of the kernel, (O, kw*C)),

where each ``cols[:, d_h i : d_h i + Ho]`` is, per image, a contiguous (Ho*Wo, kw*C) matrix: a
view, no copy: kh products with K = kw*C instead of one with K = kh*kw*C, and 1/kh of the
copying (measured in ``PERFORMANCE.md``).

**Threads.** The images of a batch are independent, so the batch is split across threads
(``kernels.threads.parallel_for``), and each thread runs the whole pipeline -- im2col,
product, layout change -- on its slice with BLAS held to one thread, so that the copies use
every core, not just the products.

**Saving the columns.** The weight gradient ``G^T @ cols`` needs the very matrix the forward
built, so a training step can keep it (``Columns``) instead of copying the windows again.

The thresholds below are explained, with their measurements, in ``PERFORMANCE.md``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .. import threads
from .geometry import _Geometry

# Largest im2col matrix (and other per-chunk buffers) built at once; bigger batches go in chunks.
_COLS_BUDGET_BYTES = 24 << 20

# NHWC -> NCHW copies are done this many bytes of source rows at a time, to stay in cache.
_TRANSPOSE_BLOCK_BYTES = 32 << 10

# Below this many input channels im2col and col2im work on NCHW planes, not in NHWC.
_PLANES_MAX_CHANNELS = 8

# Stride 1 down the rows goes by kernel rows while a row window (kw*C numbers) is at most this
# wide; wider, the kh products' extra passes over the output cost more than the copying saved.
_ROWS_MAX_WIDTH = 512

# The forward keeps its im2col matrix for the weight gradient while it is at most this big.
_SAVED_COLUMNS_BYTES = 256 << 20


def _batch_step(n: int, per_image_bytes: int) -> int:
    """How many of ``n`` images one chunk takes so that its buffers stay within
    ``_COLS_BUDGET_BYTES`` (at least one)."""
    return max(1, min(n, _COLS_BUDGET_BYTES // max(1, per_image_bytes)))


def _chunks(geo: _Geometry, itemsize: int) -> tuple[list[tuple[int, int]], int]:
    """Batch slices [lo, hi) whose im2col matrices fit the budget, and the largest length."""
    step = _batch_step(geo.n, _columns_bytes_per_image(geo, itemsize))
    return [(lo, min(geo.n, lo + step)) for lo in range(0, geo.n, step)], step


def _nhwc_to_nchw(src: np.ndarray, dst: np.ndarray, b: np.ndarray | None = None) -> None:
    """``dst[...] = src.transpose(0, 3, 1, 2)`` (``+ b`` per channel, if given) for src
    (n, h, w, c), a few rows at a time."""
    n, h, w, c = src.shape
    rows = max(1, _TRANSPOSE_BLOCK_BYTES // max(1, w * c * src.itemsize))
    bias = None if b is None else b.reshape(c, 1, 1)

    for r0 in range(0, h, rows):
        s = src[:, r0 : r0 + rows].transpose(0, 3, 1, 2)
        if bias is None:
            dst[:, :, r0 : r0 + rows] = s
        else:
            np.add(s, bias, out=dst[:, :, r0 : r0 + rows])


def _weight_matrix(w: np.ndarray) -> np.ndarray:
    """(O, C, kh, kw) -> (O, kh*kw*C), columns in the (i, j, c) order of an NHWC im2col row."""
    o, c, kh, kw = w.shape
    return np.ascontiguousarray(w.transpose(0, 2, 3, 1)).reshape(o, kh * kw * c)


def _padded_nhwc(x: np.ndarray, geo: _Geometry) -> np.ndarray:
    """The images of ``x`` in NHWC order, inside a border of zeros (the padding)."""
    n = x.shape[0]
    xpad = np.empty((n, geo.hp, geo.wp, geo.c), dtype=x.dtype)
    # Zero only the border; the interior is overwritten by the transposed input right after.
    if geo.ph:
        xpad[:, : geo.ph] = 0
        xpad[:, geo.ph + geo.h :] = 0
    if geo.pw:
        xpad[:, :, : geo.pw] = 0
        xpad[:, :, geo.pw + geo.w :] = 0
    xpad[:, geo.ph : geo.ph + geo.h, geo.pw : geo.pw + geo.w] = x.transpose(0, 2, 3, 1)
    return xpad


def _row_windows_cpu(x: np.ndarray, geo: _Geometry, cols: np.ndarray) -> None:
    """Fill ``cols`` (n, Hp, Wo, kw*C) with the kw taps of every padded row: entry
    (n, y, q, (j, c)) is xpad[n, y, s_w q + d_w j, c]. The strided-view copy of ``_im2col_cpu``
    without the kernel-row axis (the products take the rows as views)."""
    xpad = _padded_nhwc(x, geo)
    sn, sy, sx, sc = xpad.strides
    windows = as_strided(xpad, shape=(x.shape[0], geo.hp, geo.wo, geo.kw, geo.c),
                         strides=(sn, sy, geo.sw * sx, geo.dw * sx, sc), writeable=False)
    np.copyto(cols.reshape(windows.shape), windows)


def _kernel_row(cols: np.ndarray, geo: _Geometry, i: int) -> np.ndarray:
    """The (n, Ho*Wo, kw*C) matrices of the windows' row i: rows d_h i .. d_h i + Ho - 1 of
    the row windows ``cols`` (n, Hp, Wo, kw*C), a view."""
    n = cols.shape[0]
    return cols[:, geo.dh * i : geo.dh * i + geo.ho].reshape(n, geo.ho * geo.wo, -1)


def _row_weights(w: np.ndarray) -> np.ndarray:
    """(O, C, kh, kw) -> (kh, kw*C, O): for each kernel row i, W_i^T in the (j, c) order of a
    row window."""
    o, c, kh, kw = w.shape
    return np.ascontiguousarray(w.transpose(2, 3, 1, 0)).reshape(kh, kw * c, o)


def _im2col_cpu(x: np.ndarray, geo: _Geometry, cols: np.ndarray) -> None:
    """Fill ``cols`` (n*Ho*Wo, kh*kw*C) with the receptive fields of the n images of ``x``.

    Step 1 puts the images in NHWC order into a zero-bordered buffer ``xpad``. Step 2 looks at
    ``xpad`` through a 6-D strided *view* (n, p, q, i, j, c) -> xpad[n, s_h p + d_h i,
    s_w q + d_w j, c] -- no data moves: moving one output pixel right is ``s_w`` pixels in
    ``xpad``, moving one kernel tap right is ``d_w`` pixels -- and copies that view into
    ``cols``, whose rows are then exactly the flattened receptive fields. With channels last,
    the copy moves runs of kw*C contiguous numbers (for d_w = 1), not runs of kw.
    """
    n = x.shape[0]
    xpad = _padded_nhwc(x, geo)
    sn, sy, sx, sc = xpad.strides
    windows = as_strided(
        xpad,
        shape=(n, geo.ho, geo.wo, geo.kh, geo.kw, geo.c),
        strides=(sn, geo.sh * sy, geo.sw * sx, geo.dh * sy, geo.dw * sx, sc),
        writeable=False,
    )
    np.copyto(cols.reshape(n, geo.ho, geo.wo, geo.kh, geo.kw, geo.c), windows)


def _nhwc_rows(gy: np.ndarray, geo: _Geometry, out: np.ndarray) -> None:
    """gy (n, O, >=Ho, >=Wo) -> rows (n*Ho*Wo, O), in the same (n, p, q) order as im2col."""
    n = gy.shape[0]
    rows = out.reshape(n, geo.ho, geo.wo, geo.o)
    rows[...] = gy[:, :, : geo.ho, : geo.wo].transpose(0, 2, 3, 1)


def _forward_cpu(x: np.ndarray, w: np.ndarray, b, geo: _Geometry,
                 cols: np.ndarray | None = None) -> np.ndarray:
    """im2col + one product per batch chunk, the batch split across threads
    (``kernels.threads``). Given ``cols`` (``_columns_shape``), the im2col matrix is left there
    (for the weight gradient)."""
    y = np.empty((geo.n, geo.o, geo.ho, geo.wo), dtype=x.dtype)
    if y.size == 0:
        return y
    if geo.field_size == 0:
        y[...] = 0 if b is None else b.reshape(1, -1, 1, 1)
        return y
    l = geo.ho * geo.wo
    if _planes(geo):
        wflat = w.reshape(geo.o, geo.field_size)

        def images(lo: int, hi: int) -> None:
            _forward_planes_images(x[lo:hi], wflat, b, geo.batch(hi - lo), y[lo:hi],
                                   None if cols is None else cols[lo:hi])
    elif _rows(geo):
        wrows = _row_weights(w)

        def images(lo: int, hi: int) -> None:
            _forward_rows_images(x[lo:hi], wrows, b, geo.batch(hi - lo), y[lo:hi],
                                 None if cols is None else cols[lo:hi])
    else:
        wmat = _weight_matrix(w)

        def images(lo: int, hi: int) -> None:
            _forward_images(x[lo:hi], wmat, b, geo.batch(hi - lo), y[lo:hi],
                            None if cols is None else cols[lo * l : hi * l])

    threads.parallel_for(geo.n, images, geo.n * l * (geo.field_size + geo.o) * x.itemsize)
    return y


def _forward_images(x: np.ndarray, wmat: np.ndarray, b, geo: _Geometry, y: np.ndarray,
                    cols: np.ndarray | None) -> None:
    """The forward pass of the images of ``x`` into ``y``, on the calling thread."""
    l = geo.ho * geo.wo
    if cols is None:
        chunks, step = _chunks(geo, x.itemsize)
        cols_buf = np.empty((step * l, geo.field_size), dtype=x.dtype)
    else:
        chunks, step, cols_buf = [(0, geo.n)], geo.n, cols
    ymat_buf = np.empty((step * l, geo.o), dtype=x.dtype)
    for lo, hi in chunks:
        m = (hi - lo) * l
        cols, ymat = cols_buf[:m], ymat_buf[:m]
        _im2col_cpu(x[lo:hi], geo, cols)
        # (m, K) @ (K, O): wmat.T is a transposed view of a C-contiguous array, which BLAS
        # takes as it is (the 'T' flag of gemm), so nothing is copied.
        np.matmul(cols, wmat.T, out=ymat)
        _nhwc_to_nchw(ymat.reshape(hi - lo, geo.ho, geo.wo, geo.o), y[lo:hi], b)


def _forward_rows_images(x: np.ndarray, wrows: np.ndarray, b, geo: _Geometry, y: np.ndarray,
                         cols: np.ndarray | None) -> None:
    """The forward pass by kernel rows of the images of ``x`` into ``y``, on the calling
    thread: ``Y = sum_i cols[:, d_h i : d_h i + Ho] @ W_i^T`` (see the module)."""
    l = geo.ho * geo.wo
    if cols is None:
        chunks, step = _chunks(geo, x.itemsize)
        cols_buf = np.empty((step,) + _columns_shape(geo)[1:], dtype=x.dtype)
    else:
        chunks, step, cols_buf = [(0, geo.n)], geo.n, cols
    ymat_buf = np.empty((step, l, geo.o), dtype=x.dtype)
    part_buf = np.empty_like(ymat_buf)
    for lo, hi in chunks:
        cols, ymat = cols_buf[: hi - lo], ymat_buf[: hi - lo]
        _row_windows_cpu(x[lo:hi], geo, cols)
        np.matmul(_kernel_row(cols, geo, 0), wrows[0], out=ymat)
        for i in range(1, geo.kh):
            part = part_buf[: hi - lo]
            np.matmul(_kernel_row(cols, geo, i), wrows[i], out=part)
            ymat += part
        _nhwc_to_nchw(ymat.reshape(hi - lo, geo.ho, geo.wo, geo.o), y[lo:hi], b)


def _planes(geo: _Geometry) -> bool:
    """Whether the input has so few channels that im2col and col2im work on NCHW image planes
    (``_im2col_planes_cpu``, ``_backward_input_planes_cpu``) rather than in NHWC."""
    return geo.c < _PLANES_MAX_CHANNELS


def _rows(geo: _Geometry) -> bool:
    """Whether the forward goes by kernel rows (``_forward_rows_images``): stride 1 down the
    rows, a kernel of several rows, channels enough for NHWC and row windows of at most
    ``_ROWS_MAX_WIDTH`` numbers."""
    return (geo.sh == 1 and geo.kh > 1 and not _planes(geo)
            and geo.kw * geo.c <= _ROWS_MAX_WIDTH)


def _columns_shape(geo: _Geometry) -> tuple[int, ...]:
    """The shape of the im2col matrix of all N images: (N*Ho*Wo, kh*kw*C) in NHWC rows;
    (N, C*kh*kw, Ho*Wo), one matrix of planes per image, for an input of few channels; or
    (N, Hp, Wo, kw*C), the row windows (``_row_windows_cpu``), for stride 1 down the rows."""
    if _planes(geo):
        return (geo.n, geo.field_size, geo.ho * geo.wo)
    if _rows(geo):
        return (geo.n, geo.hp, geo.wo, geo.kw * geo.c)
    return (geo.n * geo.ho * geo.wo, geo.field_size)


def _columns_bytes_per_image(geo: _Geometry, itemsize: int) -> int:
    shape = _columns_shape(geo.batch(1))
    return int(np.prod(shape)) * itemsize


def _im2col_planes_cpu(x: np.ndarray, geo: _Geometry, cols: np.ndarray) -> None:
    """Fill ``cols`` (n, C*kh*kw, Ho*Wo) with the im2col matrices of the n images of ``x``,
    channels first: row (c, i, j) of image n is the (Ho, Wo) plane of the pixels
    xpad[n, c, s_h p + d_h i, s_w q + d_w j] that tap (i, j) reads -- the transpose of an
    NHWC im2col row block, with the same strided *view* trick: (n, c, i, j, p, q) is one 6-D
    view of the zero-bordered NCHW ``xpad``, copied once."""
    n = x.shape[0]
    xpad = np.zeros((n, geo.c, geo.hp, geo.wp), dtype=x.dtype)
    xpad[:, :, geo.ph : geo.ph + geo.h, geo.pw : geo.pw + geo.w] = x
    sn, sc, sy, sx = xpad.strides
    windows = as_strided(
        xpad,
        shape=(n, geo.c, geo.kh, geo.kw, geo.ho, geo.wo),
        strides=(sn, sc, geo.dh * sy, geo.dw * sx, geo.sh * sy, geo.sw * sx),
        writeable=False,
    )
    np.copyto(cols.reshape(n, geo.c, geo.kh, geo.kw, geo.ho, geo.wo), windows)


def _forward_planes_images(x: np.ndarray, wflat: np.ndarray, b, geo: _Geometry, y: np.ndarray,
                           cols: np.ndarray | None) -> None:
    """The forward pass of images of few channels: per image ``y[n] = W cols[n]``, the weight
    (O, C*kh*kw) as it is stored times the image's (C*kh*kw, Ho*Wo) planes, which is already
    the NCHW output -- no layout change on either side."""
    l = geo.ho * geo.wo
    if cols is None:
        chunks, step = _chunks(geo, x.itemsize)
        cols_buf = np.empty((step, geo.field_size, l), dtype=x.dtype)
    else:
        chunks, cols_buf = [(0, geo.n)], cols
    for lo, hi in chunks:
        cols = cols_buf[: hi - lo]
        _im2col_planes_cpu(x[lo:hi], geo, cols)
        out = y[lo:hi].reshape(hi - lo, geo.o, l)
        np.matmul(wflat, cols, out=out)
        if b is not None:
            out += b.reshape(-1, 1)


@dataclass(frozen=True)
class Columns:
    """The im2col matrix of a convolution's input, kept from the forward pass for the weight
    gradient (``dL/dW = G^T @ cols`` needs exactly it): ``matrix`` is (N*Ho*Wo, kh*kw*C) in
    the CPU path's NHWC order, (N, C*kh*kw, Ho*Wo) for an input of few channels, or the row
    windows (N, Hp, Wo, kw*C) for stride 1 down the rows (``_columns_shape``), for the
    convolution ``geometry``."""

    matrix: np.ndarray
    geometry: _Geometry


def _forward_saving_cpu(x: np.ndarray, w: np.ndarray, b, geo: _Geometry):
    """``_forward_cpu`` for the whole batch at once, keeping the im2col matrix."""
    cols = np.empty(_columns_shape(geo), dtype=x.dtype)
    return _forward_cpu(x, w, b, geo, cols), Columns(cols, geo)


def _keeps_columns(geo: _Geometry, itemsize: int) -> bool:
    """Whether the forward keeps its im2col matrix: it is (kh*kw)/(s_h*s_w) times the size of
    the input and lives as long as the autograd graph holds it, so only up to
    ``_SAVED_COLUMNS_BYTES``."""
    size = geo.n * geo.ho * geo.wo * geo.field_size
    return size > 0 and geo.o > 0 and \
        geo.n * _columns_bytes_per_image(geo, itemsize) <= _SAVED_COLUMNS_BYTES
