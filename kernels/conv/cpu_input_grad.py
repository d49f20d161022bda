r"""The CPU input gradient of a convolution, dL/dx = col2im(G @ W), by four paths.

With G = dL/dY as rows (N*Ho*Wo, O) and the weight as a matrix W (O, kh*kw*C),

    dL/dcols = G @ W           (N*Ho*Wo, kh*kw*C)
    dL/dx    = col2im(dL/dcols)

where **col2im** is the adjoint of im2col: im2col copied each input pixel into every window
that covers it, so col2im *adds* every window's entry back onto the pixel it came from. The
same map is the forward pass of a transposed convolution. ``_input_gradient_path`` chooses
how to compute it:

* ``"col2im"`` (``_col2im_cpu``): a loop over the kh*kw kernel taps; tap (i, j) of every
  window lands on the pixels ``xpad[:, s_h p + d_h i, s_w q + d_w j]``, a strided slice, so
  each tap is one vectorised add, in NHWC.
* ``"planes"`` (``_backward_input_planes_cpu``): the same loop on NCHW planes, for an input
  of few channels (a DCGAN generator's last layer writes 1 or 3).
* ``"stride1"`` (``_backward_input_stride1_cpu``): with stride 1 the input gradient is itself
  a convolution, of gy with the flipped kernel, and goes through im2col and one product.
* ``"phases"`` (``_backward_input_subpixel_cpu``): when the stride divides the kernel (k=4,
  s=2 in every DCGAN), the input pixels split into s_h*s_w *phases*, each a stride-1
  convolution of gy with every s-th tap of the kernel; one im2col of gy and one product give
  them all, a gather with no col2im at all.

All four equal ``kernels.reference.conv.conv2d_backward_input``; the thresholds that choose
among them are explained, with their measurements, in ``PERFORMANCE.md``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .. import threads
from .cpu_forward import _batch_step, _forward_cpu, _nhwc_rows, _nhwc_to_nchw, _planes, \
    _weight_matrix
from .geometry import _Geometry, _geometry

# The phase product has s_h*s_w*C rows; below this many it is too narrow to be fast ...
_SUBPIXEL_ROWS = 128
# ... and it computes every phase at every window: taken while that is at most this many
# times the windows of col2im.
_SUBPIXEL_SPARE = 1.25


def _input_gradient_path(geo: _Geometry) -> str:
    """How the CPU computes a convolution's input gradient (and a transposed convolution's
    forward pass): "stride1" (a convolution with the flipped kernel), "phases" (one product
    for every phase of a stride that divides the kernel), "planes" (col2im in NCHW, for few
    input channels) or "col2im" (in NHWC)."""
    if geo.sh == 1 and geo.sw == 1 and geo.ho * geo.wo > 0 and geo.field_size > 0:
        return "stride1"
    if _subpixel(geo):
        return "phases"
    if _planes(geo):
        return "planes"
    return "col2im"


def _subpixel(geo: _Geometry) -> bool:
    """Whether the input gradient goes by phases (``_backward_input_subpixel_cpu``): a
    stride > 1 that divides the kernel, no dilation, enough input channels for a wide product
    (``_SUBPIXEL_ROWS``) and few spare windows at the border (``_SUBPIXEL_SPARE``)."""
    strided = geo.sh > 1 or geo.sw > 1
    divides = geo.dh == geo.dw == 1 and geo.kh % geo.sh == 0 and geo.kw % geo.sw == 0
    if not (strided and divides and geo.sh * geo.sw * geo.c >= _SUBPIXEL_ROWS
            and geo.ho * geo.wo > 0):
        return False
    windows = (_Phases.of(geo.h, geo.kh, geo.sh, geo.ph).nq
               * _Phases.of(geo.w, geo.kw, geo.sw, geo.pw).nq)
    return windows <= _SUBPIXEL_SPARE * geo.ho * geo.wo


def _backward_input_cpu(gy: np.ndarray, w: np.ndarray, geo: _Geometry, b=None) -> np.ndarray:
    """col2im(G @ W) (+ b), by the path ``_input_gradient_path`` chooses, the batch split
    across threads."""
    path = _input_gradient_path(geo)
    if path == "stride1":
        return _backward_input_stride1_cpu(gy, w, geo, b)
    gx = np.empty((geo.n, geo.c, geo.h, geo.w), dtype=gy.dtype)
    if gx.size == 0:
        return gx
    if geo.ho * geo.wo == 0 or geo.o == 0:
        gx[...] = 0 if b is None else b.reshape(1, -1, 1, 1)
        return gx
    if path == "phases":
        wsub = _subpixel_weight(w, geo)

        def images(lo: int, hi: int) -> None:
            _backward_input_subpixel_cpu(gy[lo:hi], wsub, geo.batch(hi - lo), gx[lo:hi], b)
    elif path == "planes":
        wtaps = _weight_matrix(w).T

        def images(lo: int, hi: int) -> None:
            _backward_input_planes_cpu(gy[lo:hi], wtaps, geo.batch(hi - lo), gx[lo:hi], b)
    else:
        wmat = _weight_matrix(w)

        def images(lo: int, hi: int) -> None:
            _backward_input_col2im_cpu(gy[lo:hi], wmat, geo.batch(hi - lo), gx[lo:hi], b)

    work = geo.n * geo.ho * geo.wo * (geo.field_size + geo.o) * gy.itemsize
    threads.parallel_for(geo.n, images, work)
    return gx


def _backward_input_col2im_cpu(gy: np.ndarray, wmat: np.ndarray, geo: _Geometry,
                               gx: np.ndarray, b=None) -> None:
    """col2im(G @ W) (+ b) for the images of ``gy`` into ``gx``, on the calling thread."""
    # The batch is cut in chunks so that the padded gradient and the row buffers stay small.
    per_image = (geo.ho * geo.wo * (geo.o + geo.sw * geo.c) + geo.hp * geo.wp * geo.c)
    step = _batch_step(geo.n, per_image * gy.itemsize)
    l = geo.ho * geo.wo
    gmat_buf = np.empty((step * l, geo.o), dtype=gy.dtype)
    for lo in range(0, geo.n, step):
        hi = min(geo.n, lo + step)
        gmat = gmat_buf[: (hi - lo) * l]
        _nhwc_rows(gy[lo:hi], geo, gmat)
        _col2im_cpu(gmat, wmat, geo, gx[lo:hi], b)


def _col2im_cpu(
    gmat: np.ndarray, wmat: np.ndarray, geo: _Geometry, gx: np.ndarray, b=None
) -> None:
    """Input gradient of n images: ``gx = col2im(G @ W)`` (+ ``b``), one kernel tap at a time.

    ``gmat`` is G, the output gradient as rows (n*Ho*Wo, O); ``wmat`` the weight (O, kh*kw*C);
    the result goes to ``gx`` (n, C, H, W). ``dcols = G @ W`` holds, for every window and tap
    (i, j), the gradient of the input pixel the window read there, and col2im -- the adjoint
    of the im2col copy -- adds each entry back onto that pixel:

        gxpad[n, s_h p + d_h i, s_w q + d_w j, :] += dcols[(n, p, q), (i, j, :)]

    For a fixed tap (i, j) the target pixels of all windows form a strided slice of ``gxpad``,
    and no two windows hit the same pixel through the same tap, so each tap is ONE vectorised
    ``+=`` (``np.add.at`` is only needed when indices collide). The loop runs over the kh*kw
    taps, not over the N*Ho*Wo windows.

    Two refinements make it fast (``PERFORMANCE.md``):

    * The columns of ``dcols`` for tap (i, j) are ``G @ W[:, (i, j, :)]``, so each tap's block
      is computed right before it is added, into a small contiguous buffer, instead of first
      materialising the whole (n*Ho*Wo, kh*kw*C) matrix. The add then reads a contiguous
      source, which is what makes it fast (NumPy's cost is per contiguous run, not per number).
    * Taps j = s_w*m + r, r < s_w (dilation 1) land on columns s_w*(q + m) + r: viewing each
      padded row as (blocks, s_w), the s_w taps of group m fill block q + m of window q. So the
      s_w taps of a group share one product and one add, whose destination -- (Wo, s_w, C) for
      each output row -- is contiguous too.
    """
    n = gx.shape[0]
    m_rows = gmat.shape[0]
    sub = geo.sw if geo.dw == 1 else 1  # taps per group
    wb = -(-geo.wp // sub)
    gxpad = np.empty((n, geo.hp, wb, sub, geo.c), dtype=gmat.dtype)
    gxpad[...] = 0 if b is None else b  # a transposed convolution's bias: once per pixel
    buf = np.empty((m_rows * sub * geo.c,), dtype=gmat.dtype)
    for i in range(geo.kh):
        rows = slice(geo.dh * i, geo.dh * i + geo.sh * (geo.ho - 1) + 1, geo.sh)
        for j0 in range(0, geo.kw, sub):
            r = min(sub, geo.kw - j0)
            col0 = (i * geo.kw + j0) * geo.c
            dcols = buf[: m_rows * r * geo.c].reshape(m_rows, r * geo.c)
            np.matmul(gmat, wmat[:, col0 : col0 + r * geo.c], out=dcols)
            if sub > 1:  # group of taps j0 .. j0+r-1 -> blocks m .. m+Wo-1, phases 0 .. r-1
                m = j0 // sub
                dst = gxpad[:, rows, m : m + geo.wo, :r]
            else:  # a single tap: columns d_w j + s_w q
                cols = slice(geo.dw * j0, geo.dw * j0 + geo.sw * (geo.wo - 1) + 1, geo.sw)
                dst = gxpad[:, rows, cols]
            np.add(dst, dcols.reshape(n, geo.ho, geo.wo, r, geo.c), out=dst)
    gxpad = gxpad.reshape(n, geo.hp, wb * sub, geo.c)
    _nhwc_to_nchw(gxpad[:, geo.ph : geo.ph + geo.h, geo.pw : geo.pw + geo.w], gx)


def _backward_input_planes_cpu(gy: np.ndarray, wtaps: np.ndarray, geo: _Geometry,
                               gx: np.ndarray, b=None) -> None:
    """col2im(W^T G) (+ b) in NCHW, for an input of few channels (an RGB or grey image).

    NHWC col2im adds runs of C numbers per tap, which for C = 1 or 3 are mostly overhead.
    Here each image's products come out as planes: ``wtaps`` (kh*kw*C, O) times the image's
    gradient as it is stored, (O, Ho*Wo), gives one (Ho, Wo) plane per tap and channel, and
    tap (i, j) adds its C planes onto the strided pixels it read,

        gxpad[n, :, s_h p + d_h i, s_w q + d_w j] += planes[n, (i, j, :), p, q],

    rows of Wo numbers at a time, with no layout change on either side.
    """
    n = gy.shape[0]
    l = geo.ho * geo.wo
    step = _batch_step(n, (geo.field_size * l + geo.c * geo.hp * geo.wp) * gy.itemsize)
    gxpad = np.empty((step, geo.c, geo.hp, geo.wp), dtype=gy.dtype)
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        pad = gxpad[: hi - lo]
        pad[...] = 0 if b is None else b.reshape(-1, 1, 1)
        planes = np.matmul(wtaps, gy[lo:hi, :, : geo.ho, : geo.wo].reshape(hi - lo, geo.o, l))
        planes = planes.reshape(hi - lo, geo.kh, geo.kw, geo.c, geo.ho, geo.wo)
        for i in range(geo.kh):
            rows = slice(geo.dh * i, geo.dh * i + geo.sh * (geo.ho - 1) + 1, geo.sh)
            for j in range(geo.kw):
                cols = slice(geo.dw * j, geo.dw * j + geo.sw * (geo.wo - 1) + 1, geo.sw)
                dst = pad[:, :, rows, cols]
                np.add(dst, planes[:, i, j], out=dst)
        gx[lo:hi] = pad[:, :, geo.ph : geo.ph + geo.h, geo.pw : geo.pw + geo.w]


def _backward_input_stride1_cpu(gy: np.ndarray, w: np.ndarray, geo: _Geometry, b=None):
    """Stride 1: the input gradient is a convolution of gy with the flipped kernel.

    ``gx[h] = sum_i gy[h + pad - d i] w[i]`` (one axis shown) is a correlation of gy, padded
    by ``d (k - 1) - pad``, with the kernel reversed, ``w'[i] = w[k - 1 - i]``, and with
    input and output channels swapped. That is the forward path -- im2col and one product --
    with no col2im at all. (For stride > 1 the same identity needs zeros between the gy
    pixels, s_h*s_w times the work, so col2im is used there.)
    """
    wf = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))  # (C, O, kh, kw)
    ph, pw = geo.dh * (geo.kh - 1) - geo.ph, geo.dw * (geo.kw - 1) - geo.pw
    # gy has geo.ho x geo.wo pixels; the gradient needs gy padded to (H + span - 1) rows. When
    # that is gy plus the same padding on both sides (nearly always), the forward's own zero
    # padding does it; otherwise (padding wider than the kernel span, or the extra rows of a
    # transposed convolution's output_padding) build the padded gy explicitly.
    if ph >= 0 and pw >= 0 and geo.ho + 2 * ph - geo.dh * (geo.kh - 1) == geo.h and (
        geo.wo + 2 * pw - geo.dw * (geo.kw - 1) == geo.w
    ):
        src, pad = gy[:, :, : geo.ho, : geo.wo], (ph, pw)
    else:
        ext_hw = (geo.h + geo.dh * (geo.kh - 1), geo.w + geo.dw * (geo.kw - 1))
        ext = np.zeros((geo.n, geo.o) + ext_hw, dtype=gy.dtype)
        # gy row p sits at ext row p + ph; rows falling outside ext receive no gradient
        # (they are windows that lie entirely in the padding).
        r0, c0 = max(0, -ph), max(0, -pw)
        r1 = min(geo.ho, ext.shape[2] - ph)
        c1 = min(geo.wo, ext.shape[3] - pw)
        if r1 > r0 and c1 > c0:
            ext[:, :, r0 + ph : r1 + ph, c0 + pw : c1 + pw] = gy[:, :, r0:r1, c0:c1]
        src, pad = ext, (0, 0)
    flipped = _geometry("conv2d_backward_input", src.shape, wf.shape, 1, pad, (geo.dh, geo.dw))
    assert (flipped.ho, flipped.wo) == (geo.h, geo.w)
    return _forward_cpu(src, wf, b, flipped)


@dataclass(frozen=True)
class _Phases:
    """One axis of the stride-phase decomposition of a strided convolution's input gradient.

    With stride s, kernel k = T s and no dilation, padded input row u = y + pad reads output
    rows o = q - m through taps t = r + s m, where q = u // s, r = u % s and m < T:

        gx[y] = sum_{m < T} gy[q - m] w[r + s m].

    Rows of one phase r share a window of T (``taps``) consecutive gy rows that slides by one
    per q. With q0 = pad // s the first q any row needs and ``nq`` the count of windows, the gy
    rows of window q0 + j are ``gyp[j : j + T]`` of gy shifted by ``lead = T - 1 - q0`` zero
    rows (entry a of the window is gy row q0 + j - (T - 1) + a, i.e. m = T - 1 - a). Phase r
    fills rows ``y0[r], y0[r] + s, ...`` (``count[r]`` of them) from windows ``j0[r] ...``.
    """

    taps: int
    lead: int
    nq: int
    y0: tuple[int, ...]
    j0: tuple[int, ...]
    count: tuple[int, ...]

    @staticmethod
    def of(length: int, k: int, s: int, pad: int) -> "_Phases":
        q0, q1 = pad // s, (length - 1 + pad) // s
        y0 = tuple((r - pad) % s for r in range(s))
        return _Phases(k // s, k // s - 1 - q0, q1 - q0 + 1, y0,
                       tuple((y + pad) // s - q0 for y in y0),
                       tuple(max(0, -(-(length - y) // s)) for y in y0))


def _subpixel_weight(w: np.ndarray, geo: _Geometry) -> np.ndarray:
    """The stacked sub-kernels of ``_backward_input_subpixel_cpu``: rows (ry, rx, c), columns
    (a, b, o) in the order of its windows, tap (a, b) of phase (ry, rx) being w[o, c,
    ry + s_h (T_h - 1 - a), rx + s_w (T_w - 1 - b)]."""
    th, tw = geo.kh // geo.sh, geo.kw // geo.sw
    # axes (o, c, a, ry, b, rx), a and b reversed
    w6 = w.reshape(geo.o, geo.c, th, geo.sh, tw, geo.sw)[:, :, ::-1, :, ::-1, :]
    return np.ascontiguousarray(w6.transpose(3, 5, 1, 2, 4, 0)).reshape(
        geo.sh * geo.sw * geo.c, th * tw * geo.o)


def _backward_input_subpixel_cpu(gy: np.ndarray, wsub: np.ndarray, geo: _Geometry,
                                 gx: np.ndarray, b=None) -> None:
    """Input gradient when the stride divides the kernel: a gather, one product for all phases.

    By the identity of ``_Phases`` (per axis), each of the s_h*s_w phases of gx -- the pixels
    (y, x) with fixed (y + pad_h) % s_h and (x + pad_w) % s_w -- is a *stride-1* convolution of
    gy with a T_h x T_w sub-kernel (every s-th tap of w, reversed). All phases read the same
    T_h x T_w windows of gy, so one im2col of gy and ONE product with the stacked sub-kernels
    (s_h*s_w*C rows) give them all, and there is no col2im: each pixel of gx is written once,
    by a copy, not accumulated from k_h*k_w adds. The price is the windows at the border that
    only some phases need (the product computes all phases there): ``_subpixel`` takes this
    path only where that spare work is small.
    """
    ph_y = _Phases.of(geo.h, geo.kh, geo.sh, geo.ph)
    ph_x = _Phases.of(geo.w, geo.kw, geo.sw, geo.pw)
    th, tw = ph_y.taps, ph_x.taps
    rows_p, cols_p = ph_y.nq + th - 1, ph_x.nq + tw - 1
    per_image = rows_p * cols_p * geo.o + ph_y.nq * ph_x.nq * (wsub.shape[0] + wsub.shape[1])
    step = _batch_step(geo.n, per_image * gy.itemsize)
    for lo in range(0, geo.n, step):
        hi = min(geo.n, lo + step)
        n = hi - lo
        # gy in NHWC, shifted by `lead` rows/columns into a zero border
        gyp = np.zeros((n, rows_p, cols_p, geo.o), dtype=gy.dtype)
        r0, r1 = max(0, ph_y.lead), min(rows_p, ph_y.lead + geo.ho)
        c0, c1 = max(0, ph_x.lead), min(cols_p, ph_x.lead + geo.wo)
        if r1 > r0 and c1 > c0:
            gyp[:, r0:r1, c0:c1] = gy[lo:hi, :, r0 - ph_y.lead : r1 - ph_y.lead,
                                      c0 - ph_x.lead : c1 - ph_x.lead].transpose(0, 2, 3, 1)
        sn, sy, sx, sc = gyp.strides
        windows = as_strided(gyp, shape=(n, ph_y.nq, ph_x.nq, th, tw, geo.o),
                             strides=(sn, sy, sx, sy, sx, sc), writeable=False)
        cols = np.empty((n, ph_y.nq, ph_x.nq, th, tw, geo.o), dtype=gy.dtype)
        np.copyto(cols, windows)
        res = np.matmul(wsub, cols.reshape(n * ph_y.nq * ph_x.nq, -1).T)
        res = res.reshape(geo.sh, geo.sw, geo.c, n, ph_y.nq, ph_x.nq)
        for ry in range(geo.sh):
            ny, jy = ph_y.count[ry], ph_y.j0[ry]
            for rx in range(geo.sw):
                nx, jx = ph_x.count[rx], ph_x.j0[rx]
                if ny and nx:
                    gx[lo:hi, :, ph_y.y0[ry] :: geo.sh, ph_x.y0[rx] :: geo.sw] = \
                        res[ry, rx, :, :, jy : jy + ny, jx : jx + nx].transpose(1, 0, 2, 3)
    if b is not None:
        gx += b.reshape(1, -1, 1, 1)
