r"""2-D convolution and transposed convolution as im2col + one matrix product.

Arrays in, arrays out: NCHW activations, PyTorch weight layouts, zero padding. The same
functions take NumPy arrays (CPU) or CuPy arrays (GPU, hand-written CUDA im2col/col2im in
``cuda/conv.cu`` plus ``cupy.matmul``).

The math
--------
A convolution (strictly, a cross-correlation, as in every deep-learning library) of an input
``x`` of shape (N, C, H, W) with weights ``w`` of shape (O, C, kh, kw) is

    y[n, o, p, q] = b[o] + sum_{c, i, j} w[o, c, i, j] * xpad[n, c, s_h*p + d_h*i, s_w*q + d_w*j]

where ``xpad`` is ``x`` with ``pad_h`` / ``pad_w`` zeros on each side, s is the stride and d the
dilation. The output has ``Ho = floor((H + 2 pad_h - d_h (kh - 1) - 1) / s_h) + 1`` rows (and the
same for columns).

**im2col.** Copy every receptive field -- the (kh, kw, C) block of ``xpad`` that one output
pixel reads -- into one row of a matrix ``cols`` of shape (N*Ho*Wo, kh*kw*C). Reshape the
weights to ``W`` of shape (O, kh*kw*C) with the same (i, j, c) order. Then the whole
convolution is ONE matrix product,

    Y = cols @ W^T            (N*Ho*Wo, O),

which BLAS runs at close to the machine's peak. The copy costs memory traffic (each input
pixel is copied about kh*kw/(s_h*s_w) times) but turns a 7-deep loop nest into the one
operation that every CPU library has tuned for years.

**Backward.** Since Y = cols @ W^T is linear in both factors, with G = dL/dY (N*Ho*Wo, O):

    dL/dW    = G^T @ cols          (O, kh*kw*C)     -> reshape to (O, C, kh, kw)
    dL/dcols = G @ W               (N*Ho*Wo, kh*kw*C)
    dL/dx    = col2im(dL/dcols)

where **col2im** is the adjoint of im2col: im2col copied each input pixel into every window
that covers it, so col2im *adds* every window's entry back onto the pixel it came from. It is
written as a loop over the kh*kw kernel taps; tap (i, j) of every window lands on the pixels
``xpad[:, s_h*p + d_h*i, s_w*q + d_w*j]``, a strided slice, so each tap is one vectorised add.
The columns of dL/dcols that belong to one tap are ``G @ W[:, tap]``, so the CPU code computes
them tap by tap, right before adding them, and never holds the whole matrix (see
``_col2im_cpu``). With stride 1 there is a shortcut: the input gradient is then itself a
convolution, of gy with the flipped kernel, and goes through im2col and one product instead.
When the stride divides the kernel (k=4, s=2 in every DCGAN), the input pixels split into
s_h*s_w *phases*, each a stride-1 convolution of gy with every s-th tap of the kernel, and all
of them come out of one im2col of gy and one product: a gather with no col2im at all (see
``_Phases`` and ``_backward_input_subpixel_cpu``). For an input of one to a few channels (a
DCGAN generator's last layer writes 1 or 3), col2im runs on NCHW planes
(``_backward_input_planes_cpu``); ``_input_gradient_path`` chooses among the four.

**Saving the columns.** The weight gradient ``G^T @ cols`` needs the very matrix the forward
built, so a training step can keep it from the forward instead of copying the windows again
(``conv2d_forward_with_columns``; the autograd wrapper does this when the weight needs a
gradient): memory, (kh*kw)/(s_h*s_w) times the input, for one copy less per step.

**Transposed convolution** is the adjoint of convolution: ``conv_transpose2d(x, w)`` is exactly
``conv2d_backward_input(x, w)`` (the weight (C_in, C_out, kh, kw) of the transposed convolution
is the (O, C, kh, kw) weight of the convolution it transposes), and its two gradients are a
plain convolution and a weight gradient with the roles of input and output swapped.

Layout inside (CPU)
-------------------
The public layout is NCHW, but the CPU path works in NHWC internally: with channels last, a
receptive field (kh, kw, C) is made of kh runs of kw*C contiguous numbers, so the im2col copy
and the col2im adds move long contiguous runs instead of kw-long scraps, and the product
``cols @ W^T`` directly yields NHWC output rows. Measured on a 2-core machine, the NCHW<->NHWC
transposes at the edges cost less than what they save -- except where C is below 8, whose
runs of kw*C (or s_w*C for col2im) numbers are scraps again: im2col and col2im then work on
NCHW image planes (``_planes``), and the per-image products ``W cols[n]`` already give NCHW.

Threads (CPU)
-------------
The images of a batch are independent, so every pass splits the batch across threads
(``kernels.threads.parallel_for``), and each thread runs the whole pipeline -- im2col,
product, layout change -- on its slice with BLAS held to one thread; the weight gradient sums
the slices' products. The copies then use every core, not just the products: on 2 cores,
64 -> 128 channels at 16x16 (batch 64, k=4, s=2) forward + backward went from 18.6 to 15.5 ms.

Why not fewer multiplications (CPU)
-----------------------------------
A k=4, s=2 convolution is, after splitting the input's rows and columns by parity, a stride-1
2x2 convolution over 4C channels, and Winograd's F(2x2, 2x2) (Lavin & Gray, 2016) computes
that with 9 products per 2x2 tile of outputs instead of 16. It was measured on a 2-core
machine (float32). On one thread, for 32 images of 64 -> 128 channels at 16x16, its 9 products
took 1.84 ms against im2col's 3.39, but its input and output transforms -- additions, but
several NumPy passes over arrays larger than the input -- took 1.7 ms against im2col's 0.7.
On two threads at batch 64, both streaming memory at once, its forward pass was 2% faster to
49% slower than im2col over 12 layer shapes (16 to 256 channels, 8x8 to 32x32 inputs), and
forward + backward 10% faster to 37% slower. The products stay im2col's: a transform pays
where it is fused into the product's own loops, which NumPy cannot do.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import _cuda, threads
from .reduce import sum_axes

IntOr2 = int | tuple[int, int]
Array = Any  # a numpy.ndarray, or a cupy.ndarray on the GPU

__all__ = [
    "conv_output_size",
    "conv_transpose_output_size",
    "conv2d_forward",
    "conv2d_forward_with_columns",
    "Columns",
    "conv2d_backward_input",
    "conv2d_backward_weight",
    "conv2d_backward_bias",
    "conv_transpose2d_forward",
    "conv_transpose2d_backward_input",
    "conv_transpose2d_backward_weight",
]


# --------------------------------------------------------------------------------------------
# sizes and argument checking
# --------------------------------------------------------------------------------------------


def conv_output_size(h: int, k: int, stride: int, padding: int, dilation: int) -> int:
    """Output length of a convolution along one axis.

    ``floor((h + 2 padding - dilation (k - 1) - 1) / stride) + 1``: the number of positions at
    which a kernel spanning ``dilation (k - 1) + 1`` pixels fits in the padded input, stepping
    by ``stride``. Zero or negative when the kernel does not fit at all.
    """
    return (h + 2 * padding - dilation * (k - 1) - 1) // stride + 1


def conv_transpose_output_size(
    h: int, k: int, stride: int, padding: int, output_padding: int, dilation: int
) -> int:
    """Output length of a transposed convolution along one axis (as PyTorch).

    ``(h - 1) stride - 2 padding + dilation (k - 1) + output_padding + 1``: the smallest input
    length of the forward convolution that gives ``h`` outputs, plus ``output_padding`` extra
    rows (several input lengths map to the same output length when stride > 1;
    ``output_padding`` picks one).
    """
    return (h - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1


def _pair(value: IntOr2, name: str, op: str) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value), int(value)
    if (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)
    ):
        return int(value[0]), int(value[1])
    raise ValueError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")


def _check_hyper(op: str, stride: IntOr2, padding: IntOr2, dilation: IntOr2):
    s = _pair(stride, "stride", op)
    p = _pair(padding, "padding", op)
    d = _pair(dilation, "dilation", op)
    if min(s) <= 0:
        raise ValueError(f"{op}: stride must be positive, got {s}")
    if min(p) < 0:
        raise ValueError(f"{op}: padding must be non-negative, got {p}")
    if min(d) <= 0:
        raise ValueError(f"{op}: dilation must be positive, got {d}")
    return s, p, d


def _check_ndim(op: str, name: str, a, ndim: int, layout: str) -> None:
    if getattr(a, "ndim", None) != ndim:
        shape = getattr(a, "shape", None)
        raise ValueError(f"{op}: {name} must be {ndim}-D {layout}, got shape {shape}")


def _check_shape_tuple(op: str, name: str, shape, ndim: int = 4) -> tuple[int, ...]:
    try:
        t = tuple(int(v) for v in shape)
    except TypeError:
        raise ValueError(f"{op}: {name} must be a tuple of {ndim} ints, got {shape!r}") from None
    if len(t) != ndim or min(t) < 0:
        raise ValueError(f"{op}: {name} must be {ndim} non-negative ints, got {t}")
    return t


def _check_arrays(op: str, **arrays) -> None:
    """Same array module (NumPy or CuPy) and the same floating dtype for all given arrays."""
    items = [(k, a) for k, a in arrays.items() if a is not None]
    kinds = {k: ("cupy (cuda)" if _cuda.is_cupy_array(a) else type(a).__module__.split(".")[0])
             for k, a in items}
    if len(set(kinds.values())) > 1:
        desc = ", ".join(f"{k} is a {v} array" for k, v in kinds.items())
        raise TypeError(f"{op}: arrays live on different devices: {desc}")
    for k, a in items:
        if kinds[k] not in ("numpy", "cupy (cuda)"):
            raise TypeError(f"{op}: {k} must be a numpy or cupy array, got {type(a).__name__}")
    dtypes = {k: str(a.dtype) for k, a in items}
    for k, dt in dtypes.items():
        if dt not in ("float32", "float64"):
            raise TypeError(f"{op}: {k} must be float32 or float64, got {dt}")
    if len(set(dtypes.values())) > 1:
        desc = ", ".join(f"{k} {v}" for k, v in dtypes.items())
        raise TypeError(f"{op}: arrays must share one dtype, got {desc}")


@dataclass(frozen=True)
class _Geometry:
    """Everything about one convolution's shapes: x (n, c, h, w) * w (o, c, kh, kw) -> (ho, wo)."""

    n: int
    c: int
    h: int
    w: int
    o: int
    kh: int
    kw: int
    sh: int
    sw: int
    ph: int
    pw: int
    dh: int
    dw: int
    ho: int
    wo: int

    def batch(self, n: int) -> "_Geometry":
        """The same convolution on ``n`` images (a slice of the batch)."""
        return replace(self, n=n)

    @property
    def hp(self) -> int:
        return self.h + 2 * self.ph

    @property
    def wp(self) -> int:
        return self.w + 2 * self.pw

    @property
    def k(self) -> int:
        """Length of one im2col row: the kh*kw*C numbers of a receptive field."""
        return self.kh * self.kw * self.c


def _geometry(
    op: str,
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    stride: IntOr2,
    padding: IntOr2,
    dilation: IntOr2,
    out_hw: tuple[int, int] | None = None,
) -> _Geometry:
    """Check a convolution's arguments and work out its output size.

    ``out_hw`` asks for only the first (ho, wo) output positions (used by the transposed
    convolution, where ``output_padding`` adds input rows that no window needs to reach).
    """
    (sh, sw), (ph, pw), (dh, dw) = _check_hyper(op, stride, padding, dilation)
    n, c, h, w = x_shape
    o, cw, kh, kw = w_shape
    if c != cw:
        raise ValueError(
            f"{op}: input of shape {tuple(x_shape)} has {c} channels but weight of shape "
            f"{tuple(w_shape)} expects {cw} input channels (weight is (out, in, kh, kw))"
        )
    if kh < 1 or kw < 1:
        raise ValueError(f"{op}: weight of shape {tuple(w_shape)} has an empty kernel")
    span_h, span_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    if span_h > h + 2 * ph or span_w > w + 2 * pw:
        raise ValueError(
            f"{op}: kernel of size ({kh}, {kw}) with dilation ({dh}, {dw}) spans "
            f"({span_h}, {span_w}) pixels, larger than the padded input "
            f"({h + 2 * ph}, {w + 2 * pw}) (input shape {tuple(x_shape)}, padding ({ph}, {pw}), "
            f"weight shape {tuple(w_shape)})"
        )
    full_ho = conv_output_size(h, kh, sh, ph, dh)
    full_wo = conv_output_size(w, kw, sw, pw, dw)
    ho, wo = (full_ho, full_wo) if out_hw is None else out_hw
    if not (0 <= ho <= full_ho and 0 <= wo <= full_wo):  # pragma: no cover - internal misuse
        raise ValueError(f"{op}: {ho}x{wo} outputs do not fit in {full_ho}x{full_wo}")
    return _Geometry(n, c, h, w, o, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo)


def _check_grad_shape(op: str, gy, g: _Geometry, what: str) -> None:
    expected = (g.n, g.o, g.ho, g.wo)
    if tuple(gy.shape) != expected:
        raise ValueError(
            f"{op}: {what} has shape {tuple(gy.shape)}, but the convolution of an input of "
            f"shape {(g.n, g.c, g.h, g.w)} with a weight of shape {(g.o, g.c, g.kh, g.kw)} "
            f"(stride {(g.sh, g.sw)}, padding {(g.ph, g.pw)}, dilation {(g.dh, g.dw)}) "
            f"has output shape {expected}"
        )


def _check_bias(op: str, b, n_out: int, w_shape) -> None:
    if b is not None and tuple(b.shape) != (n_out,):
        raise ValueError(
            f"{op}: bias of shape {tuple(b.shape)} does not match the {n_out} output channels "
            f"of the weight of shape {tuple(w_shape)}; expected shape ({n_out},)"
        )


def _check_output_padding(op: str, output_padding: IntOr2, s, d) -> tuple[int, int]:
    opad = _pair(output_padding, "output_padding", op)
    for a in range(2):
        if opad[a] < 0 or (opad[a] >= s[a] and opad[a] >= d[a]):
            raise ValueError(
                f"{op}: output_padding {opad} must be non-negative and smaller than either "
                f"stride {tuple(s)} or dilation {tuple(d)}"
            )
    return opad


# --------------------------------------------------------------------------------------------
# CPU: im2col, col2im and the matrix products
# --------------------------------------------------------------------------------------------

# The im2col matrix of a big batch can be far larger than the input (kh*kw/(s_h*s_w) times),
# so the batch is processed in chunks whose im2col matrix stays below this many bytes. Below
# ~32 MiB the C allocator also recycles the buffer instead of mapping fresh pages every call.
_COLS_BUDGET_BYTES = 24 << 20

# NHWC -> NCHW copies walk the source with a stride of C numbers; done a few image rows at a
# time, the rows being read stay in the L1/L2 cache across the C passes (about 2x faster for
# 16x16x64 images than one big transposing copy).
_TRANSPOSE_BLOCK_BYTES = 32 << 10


def _chunks(g: _Geometry, itemsize: int) -> tuple[list[tuple[int, int]], int]:
    """Batch slices [lo, hi) whose im2col matrices fit the budget, and the largest length."""
    per_image = max(1, g.ho * g.wo * g.k * itemsize)
    step = max(1, min(g.n, _COLS_BUDGET_BYTES // per_image))
    return [(lo, min(g.n, lo + step)) for lo in range(0, g.n, step)], step


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


def _im2col_cpu(x: np.ndarray, g: _Geometry, cols: np.ndarray) -> None:
    """Fill ``cols`` (n*Ho*Wo, kh*kw*C) with the receptive fields of the n images of ``x``.

    Step 1 puts the images in NHWC order into a zero-bordered buffer ``xpad``. Step 2 looks at
    ``xpad`` through a 6-D strided *view* (n, p, q, i, j, c) -> xpad[n, s_h p + d_h i,
    s_w q + d_w j, c] -- no data moves: moving one output pixel right is ``s_w`` pixels in
    ``xpad``, moving one kernel tap right is ``d_w`` pixels -- and copies that view into
    ``cols``, whose rows are then exactly the flattened receptive fields. With channels last,
    the copy moves runs of kw*C contiguous numbers (for d_w = 1), not runs of kw.
    """
    n = x.shape[0]
    xpad = np.empty((n, g.hp, g.wp, g.c), dtype=x.dtype)
    # Zero only the border; the interior is overwritten by the transposed input right after.
    if g.ph:
        xpad[:, : g.ph] = 0
        xpad[:, g.ph + g.h :] = 0
    if g.pw:
        xpad[:, :, : g.pw] = 0
        xpad[:, :, g.pw + g.w :] = 0
    xpad[:, g.ph : g.ph + g.h, g.pw : g.pw + g.w] = x.transpose(0, 2, 3, 1)

    sn, sy, sx, sc = xpad.strides
    windows = as_strided(
        xpad,
        shape=(n, g.ho, g.wo, g.kh, g.kw, g.c),
        strides=(sn, g.sh * sy, g.sw * sx, g.dh * sy, g.dw * sx, sc),
        writeable=False,
    )
    np.copyto(cols.reshape(n, g.ho, g.wo, g.kh, g.kw, g.c), windows)


def _col2im_cpu(
    gmat: np.ndarray, wmat: np.ndarray, g: _Geometry, gx: np.ndarray, b=None
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

    Two refinements, both measured:

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
    sub = g.sw if g.dw == 1 else 1  # taps per group
    wb = -(-g.wp // sub)
    gxpad = np.empty((n, g.hp, wb, sub, g.c), dtype=gmat.dtype)
    gxpad[...] = 0 if b is None else b  # a transposed convolution's bias: once per pixel
    buf = np.empty((m_rows * sub * g.c,), dtype=gmat.dtype)
    for i in range(g.kh):
        rows = slice(g.dh * i, g.dh * i + g.sh * (g.ho - 1) + 1, g.sh)
        for j0 in range(0, g.kw, sub):
            r = min(sub, g.kw - j0)
            col0 = (i * g.kw + j0) * g.c
            dcols = buf[: m_rows * r * g.c].reshape(m_rows, r * g.c)
            np.matmul(gmat, wmat[:, col0 : col0 + r * g.c], out=dcols)
            if sub > 1:  # group of taps j0 .. j0+r-1 -> blocks m .. m+Wo-1, phases 0 .. r-1
                m = j0 // sub
                dst = gxpad[:, rows, m : m + g.wo, :r]
            else:  # a single tap: columns d_w j + s_w q
                cols = slice(g.dw * j0, g.dw * j0 + g.sw * (g.wo - 1) + 1, g.sw)
                dst = gxpad[:, rows, cols]
            np.add(dst, dcols.reshape(n, g.ho, g.wo, r, g.c), out=dst)
    gxpad = gxpad.reshape(n, g.hp, wb * sub, g.c)
    _nhwc_to_nchw(gxpad[:, g.ph : g.ph + g.h, g.pw : g.pw + g.w], gx)


def _nhwc_rows(gy: np.ndarray, g: _Geometry, out: np.ndarray) -> None:
    """gy (n, O, >=Ho, >=Wo) -> rows (n*Ho*Wo, O), in the same (n, p, q) order as im2col."""
    n = gy.shape[0]
    out.reshape(n, g.ho, g.wo, g.o)[...] = gy[:, :, : g.ho, : g.wo].transpose(0, 2, 3, 1)


def _forward_cpu(x: np.ndarray, w: np.ndarray, b, g: _Geometry,
                 cols: np.ndarray | None = None) -> np.ndarray:
    """im2col + one product per batch chunk, the batch split across threads
    (``kernels.threads``). Given ``cols`` (``_columns_shape``), the im2col matrix is left there
    (for the weight gradient)."""
    y = np.empty((g.n, g.o, g.ho, g.wo), dtype=x.dtype)
    if y.size == 0:
        return y
    if g.k == 0:
        y[...] = 0 if b is None else b.reshape(1, -1, 1, 1)
        return y
    l = g.ho * g.wo
    if _planes(g):
        wflat = w.reshape(g.o, g.k)

        def images(lo: int, hi: int) -> None:
            _forward_planes_images(x[lo:hi], wflat, b, g.batch(hi - lo), y[lo:hi],
                                   None if cols is None else cols[lo:hi])
    else:
        wmat = _weight_matrix(w)

        def images(lo: int, hi: int) -> None:
            _forward_images(x[lo:hi], wmat, b, g.batch(hi - lo), y[lo:hi],
                            None if cols is None else cols[lo * l : hi * l])

    threads.parallel_for(g.n, images, g.n * l * (g.k + g.o) * x.itemsize)
    return y


def _forward_images(x: np.ndarray, wmat: np.ndarray, b, g: _Geometry, y: np.ndarray,
                    cols: np.ndarray | None) -> None:
    """The forward pass of the images of ``x`` into ``y``, on the calling thread."""
    l = g.ho * g.wo
    if cols is None:
        chunks, step = _chunks(g, x.itemsize)
        cols_buf = np.empty((step * l, g.k), dtype=x.dtype)
    else:
        chunks, step, cols_buf = [(0, g.n)], g.n, cols
    ymat_buf = np.empty((step * l, g.o), dtype=x.dtype)
    for lo, hi in chunks:
        m = (hi - lo) * l
        cols, ymat = cols_buf[:m], ymat_buf[:m]
        _im2col_cpu(x[lo:hi], g, cols)
        # (m, K) @ (K, O): wmat.T is a transposed view of a C-contiguous array, which BLAS
        # takes as it is (the 'T' flag of gemm), so nothing is copied.
        np.matmul(cols, wmat.T, out=ymat)
        _nhwc_to_nchw(ymat.reshape(hi - lo, g.ho, g.wo, g.o), y[lo:hi], b)


def _planes(g: _Geometry) -> bool:
    """Whether the input has so few channels that im2col and col2im work on NCHW image planes
    (``_im2col_planes_cpu``, ``_backward_input_planes_cpu``) rather than in NHWC."""
    return g.c < _PLANES_MAX_CHANNELS


# Below this many input channels the CPU works on NCHW planes. Measured on one thread, 32 images,
# k=4, s=2, planes against NHWC: the forward of 1 -> 64 channels at 28x28 0.31 ms against 0.71,
# 3 -> 64 at 32x32 0.79 against 1.23, 8 -> 64 at 16x16 0.42 against 0.46, 16 -> 64 1.08
# against 0.81; a 64 -> C transposed convolution of 16x16 inputs (col2im), C = 3 0.92 against
# 2.36, C = 6 1.85 against 2.44, C = 8 2.48 against 2.49.
_PLANES_MAX_CHANNELS = 8


def _columns_shape(g: _Geometry) -> tuple[int, ...]:
    """The shape of the im2col matrix of all N images: (N*Ho*Wo, kh*kw*C) in NHWC rows, or
    (N, C*kh*kw, Ho*Wo), one matrix of planes per image, for an input of few channels."""
    if _planes(g):
        return (g.n, g.k, g.ho * g.wo)
    return (g.n * g.ho * g.wo, g.k)


def _im2col_planes_cpu(x: np.ndarray, g: _Geometry, cols: np.ndarray) -> None:
    """Fill ``cols`` (n, C*kh*kw, Ho*Wo) with the im2col matrices of the n images of ``x``,
    channels first: row (c, i, j) of image n is the (Ho, Wo) plane of the pixels
    xpad[n, c, s_h p + d_h i, s_w q + d_w j] that tap (i, j) reads -- the transpose of an
    NHWC im2col row block, with the same strided *view* trick: (n, c, i, j, p, q) is one 6-D
    view of the zero-bordered NCHW ``xpad``, copied once."""
    n = x.shape[0]
    xpad = np.zeros((n, g.c, g.hp, g.wp), dtype=x.dtype)
    xpad[:, :, g.ph : g.ph + g.h, g.pw : g.pw + g.w] = x
    sn, sc, sy, sx = xpad.strides
    windows = as_strided(
        xpad,
        shape=(n, g.c, g.kh, g.kw, g.ho, g.wo),
        strides=(sn, sc, g.dh * sy, g.dw * sx, g.sh * sy, g.sw * sx),
        writeable=False,
    )
    np.copyto(cols.reshape(n, g.c, g.kh, g.kw, g.ho, g.wo), windows)


def _forward_planes_images(x: np.ndarray, wflat: np.ndarray, b, g: _Geometry, y: np.ndarray,
                           cols: np.ndarray | None) -> None:
    """The forward pass of images of few channels: per image ``y[n] = W cols[n]``, the weight
    (O, C*kh*kw) as it is stored times the image's (C*kh*kw, Ho*Wo) planes, which is already
    the NCHW output -- no layout change on either side."""
    l = g.ho * g.wo
    if cols is None:
        chunks, step = _chunks(g, x.itemsize)
        cols_buf = np.empty((step, g.k, l), dtype=x.dtype)
    else:
        chunks, cols_buf = [(0, g.n)], cols
    for lo, hi in chunks:
        c = cols_buf[: hi - lo]
        _im2col_planes_cpu(x[lo:hi], g, c)
        out = y[lo:hi].reshape(hi - lo, g.o, l)
        np.matmul(wflat, c, out=out)
        if b is not None:
            out += b.reshape(-1, 1)


def _subpixel(g: _Geometry) -> bool:
    """Whether the input gradient goes by phases (``_backward_input_subpixel_cpu``): a
    stride > 1 that divides the kernel, no dilation, enough input channels for a wide product
    (``_SUBPIXEL_ROWS``) and few spare windows at the border (``_SUBPIXEL_SPARE``)."""
    if not ((g.sh > 1 or g.sw > 1) and g.dh == g.dw == 1 and g.kh % g.sh == 0
            and g.kw % g.sw == 0 and g.sh * g.sw * g.c >= _SUBPIXEL_ROWS and g.ho * g.wo > 0):
        return False
    windows = _Phases.of(g.h, g.kh, g.sh, g.ph).nq * _Phases.of(g.w, g.kw, g.sw, g.pw).nq
    return windows <= _SUBPIXEL_SPARE * g.ho * g.wo


# The phase product has s_h*s_w*C rows, too few for a fast product below this many (a
# 64 -> 3 or 64 -> 1 transposed convolution) ...
_SUBPIXEL_ROWS = 128
# ... and computes every phase at every window; it is taken while that is at most this many
# times the windows of col2im. Measured at batch 64, k=4, s=2, on two threads: at 17*17/16*16
# = 1.13 (a 128 -> 64 transposed convolution of 16x16 inputs) the phases take 21.3 ms against
# col2im's 24.3; at 9*9/8*8 = 1.27 both take 5.4 ms; at 8*8/7*7 = 1.31 (7x7 inputs) col2im
# is faster, 4.3 ms against 4.5.
_SUBPIXEL_SPARE = 1.25


def _input_gradient_path(g: _Geometry) -> str:
    """How the CPU computes a convolution's input gradient (and a transposed convolution's
    forward pass): "stride1" (a convolution with the flipped kernel), "phases" (one product
    for every phase of a stride that divides the kernel), "planes" (col2im in NCHW, for few
    input channels) or "col2im" (in NHWC)."""
    if g.sh == 1 and g.sw == 1 and g.ho * g.wo > 0 and g.k > 0:
        return "stride1"
    if _subpixel(g):
        return "phases"
    if _planes(g):
        return "planes"
    return "col2im"


def _backward_input_cpu(gy: np.ndarray, w: np.ndarray, g: _Geometry, b=None) -> np.ndarray:
    """col2im(G @ W) (+ b), by the path ``_input_gradient_path`` chooses, the batch split
    across threads."""
    path = _input_gradient_path(g)
    if path == "stride1":
        return _backward_input_stride1_cpu(gy, w, g, b)
    gx = np.empty((g.n, g.c, g.h, g.w), dtype=gy.dtype)
    if gx.size == 0:
        return gx
    if g.ho * g.wo == 0 or g.o == 0:
        gx[...] = 0 if b is None else b.reshape(1, -1, 1, 1)
        return gx
    if path == "phases":
        wsub = _subpixel_weight(w, g)

        def images(lo: int, hi: int) -> None:
            _backward_input_subpixel_cpu(gy[lo:hi], wsub, g.batch(hi - lo), gx[lo:hi], b)
    elif path == "planes":
        wtaps = _weight_matrix(w).T

        def images(lo: int, hi: int) -> None:
            _backward_input_planes_cpu(gy[lo:hi], wtaps, g.batch(hi - lo), gx[lo:hi], b)
    else:
        wmat = _weight_matrix(w)

        def images(lo: int, hi: int) -> None:
            _backward_input_col2im_cpu(gy[lo:hi], wmat, g.batch(hi - lo), gx[lo:hi], b)

    threads.parallel_for(g.n, images, g.n * g.ho * g.wo * (g.k + g.o) * gy.itemsize)
    return gx


def _backward_input_col2im_cpu(gy: np.ndarray, wmat: np.ndarray, g: _Geometry,
                               gx: np.ndarray, b=None) -> None:
    """col2im(G @ W) (+ b) for the images of ``gy`` into ``gx``, on the calling thread."""
    # The batch is cut in chunks so that the padded gradient and the row buffers stay small.
    per_image = (g.ho * g.wo * (g.o + g.sw * g.c) + g.hp * g.wp * g.c) * gy.itemsize
    step = max(1, min(g.n, _COLS_BUDGET_BYTES // max(1, per_image)))
    l = g.ho * g.wo
    gmat_buf = np.empty((step * l, g.o), dtype=gy.dtype)
    for lo in range(0, g.n, step):
        hi = min(g.n, lo + step)
        gmat = gmat_buf[: (hi - lo) * l]
        _nhwc_rows(gy[lo:hi], g, gmat)
        _col2im_cpu(gmat, wmat, g, gx[lo:hi], b)


def _backward_input_planes_cpu(gy: np.ndarray, wtaps: np.ndarray, g: _Geometry,
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
    l = g.ho * g.wo
    per_image = (g.k * l + g.c * g.hp * g.wp) * gy.itemsize
    step = max(1, min(n, _COLS_BUDGET_BYTES // max(1, per_image)))
    gxpad = np.empty((step, g.c, g.hp, g.wp), dtype=gy.dtype)
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        pad = gxpad[: hi - lo]
        pad[...] = 0 if b is None else b.reshape(-1, 1, 1)
        planes = np.matmul(wtaps, gy[lo:hi, :, : g.ho, : g.wo].reshape(hi - lo, g.o, l))
        planes = planes.reshape(hi - lo, g.kh, g.kw, g.c, g.ho, g.wo)
        for i in range(g.kh):
            rows = slice(g.dh * i, g.dh * i + g.sh * (g.ho - 1) + 1, g.sh)
            for j in range(g.kw):
                cols = slice(g.dw * j, g.dw * j + g.sw * (g.wo - 1) + 1, g.sw)
                dst = pad[:, :, rows, cols]
                np.add(dst, planes[:, i, j], out=dst)
        gx[lo:hi] = pad[:, :, g.ph : g.ph + g.h, g.pw : g.pw + g.w]


def _backward_input_stride1_cpu(gy: np.ndarray, w: np.ndarray, g: _Geometry, b=None):
    """Stride 1: the input gradient is a convolution of gy with the flipped kernel.

    ``gx[h] = sum_i gy[h + pad - d i] w[i]`` (one axis shown) is a correlation of gy, padded
    by ``d (k - 1) - pad``, with the kernel reversed, ``w'[i] = w[k - 1 - i]``, and with
    input and output channels swapped. That is the forward path -- im2col and one product --
    with no col2im at all. (For stride > 1 the same identity needs zeros between the gy
    pixels, s_h*s_w times the work, so col2im is used there.)
    """
    wf = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))  # (C, O, kh, kw)
    ph, pw = g.dh * (g.kh - 1) - g.ph, g.dw * (g.kw - 1) - g.pw
    # gy has g.ho x g.wo pixels; the gradient needs gy padded to (H + span - 1) rows. When
    # that is gy plus the same padding on both sides (nearly always), the forward's own zero
    # padding does it; otherwise (padding wider than the kernel span, or the extra rows of a
    # transposed convolution's output_padding) build the padded gy explicitly.
    if ph >= 0 and pw >= 0 and g.ho + 2 * ph - g.dh * (g.kh - 1) == g.h and (
        g.wo + 2 * pw - g.dw * (g.kw - 1) == g.w
    ):
        src, pad = gy[:, :, : g.ho, : g.wo], (ph, pw)
    else:
        ext = np.zeros(
            (g.n, g.o, g.h + g.dh * (g.kh - 1), g.w + g.dw * (g.kw - 1)), dtype=gy.dtype
        )
        # gy row p sits at ext row p + ph; rows falling outside ext receive no gradient
        # (they are windows that lie entirely in the padding).
        r0, c0 = max(0, -ph), max(0, -pw)
        r1 = min(g.ho, ext.shape[2] - ph)
        c1 = min(g.wo, ext.shape[3] - pw)
        if r1 > r0 and c1 > c0:
            ext[:, :, r0 + ph : r1 + ph, c0 + pw : c1 + pw] = gy[:, :, r0:r1, c0:c1]
        src, pad = ext, (0, 0)
    g1 = _geometry("conv2d_backward_input", src.shape, wf.shape, 1, pad, (g.dh, g.dw))
    assert (g1.ho, g1.wo) == (g.h, g.w)
    return _forward_cpu(src, wf, b, g1)


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


def _subpixel_weight(w: np.ndarray, g: _Geometry) -> np.ndarray:
    """The stacked sub-kernels of ``_backward_input_subpixel_cpu``: rows (ry, rx, c), columns
    (a, b, o) in the order of its windows, tap (a, b) of phase (ry, rx) being w[o, c,
    ry + s_h (T_h - 1 - a), rx + s_w (T_w - 1 - b)]."""
    th, tw = g.kh // g.sh, g.kw // g.sw
    w6 = w.reshape(g.o, g.c, th, g.sh, tw, g.sw)[:, :, ::-1, :, ::-1, :]  # (o, c, a, ry, b, rx)
    return np.ascontiguousarray(w6.transpose(3, 5, 1, 2, 4, 0)).reshape(
        g.sh * g.sw * g.c, th * tw * g.o)


def _backward_input_subpixel_cpu(gy: np.ndarray, wsub: np.ndarray, g: _Geometry,
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
    ph_y, ph_x = _Phases.of(g.h, g.kh, g.sh, g.ph), _Phases.of(g.w, g.kw, g.sw, g.pw)
    th, tw = ph_y.taps, ph_x.taps
    rows_p, cols_p = ph_y.nq + th - 1, ph_x.nq + tw - 1
    per_image = rows_p * cols_p * g.o + ph_y.nq * ph_x.nq * (wsub.shape[0] + wsub.shape[1])
    step = max(1, min(g.n, _COLS_BUDGET_BYTES // max(1, per_image * gy.itemsize)))
    for lo in range(0, g.n, step):
        hi = min(g.n, lo + step)
        n = hi - lo
        # gy in NHWC, shifted by `lead` rows/columns into a zero border
        gyp = np.zeros((n, rows_p, cols_p, g.o), dtype=gy.dtype)
        r0, r1 = max(0, ph_y.lead), min(rows_p, ph_y.lead + g.ho)
        c0, c1 = max(0, ph_x.lead), min(cols_p, ph_x.lead + g.wo)
        if r1 > r0 and c1 > c0:
            gyp[:, r0:r1, c0:c1] = gy[lo:hi, :, r0 - ph_y.lead : r1 - ph_y.lead,
                                      c0 - ph_x.lead : c1 - ph_x.lead].transpose(0, 2, 3, 1)
        sn, sy, sx, sc = gyp.strides
        windows = as_strided(gyp, shape=(n, ph_y.nq, ph_x.nq, th, tw, g.o),
                             strides=(sn, sy, sx, sy, sx, sc), writeable=False)
        cols = np.empty((n, ph_y.nq, ph_x.nq, th, tw, g.o), dtype=gy.dtype)
        np.copyto(cols, windows)
        res = np.matmul(wsub, cols.reshape(n * ph_y.nq * ph_x.nq, -1).T)
        res = res.reshape(g.sh, g.sw, g.c, n, ph_y.nq, ph_x.nq)
        for ry in range(g.sh):
            ny, jy = ph_y.count[ry], ph_y.j0[ry]
            for rx in range(g.sw):
                nx, jx = ph_x.count[rx], ph_x.j0[rx]
                if ny and nx:
                    gx[lo:hi, :, ph_y.y0[ry] :: g.sh, ph_x.y0[rx] :: g.sw] = \
                        res[ry, rx, :, :, jy : jy + ny, jx : jx + nx].transpose(1, 0, 2, 3)
    if b is not None:
        gx += b.reshape(1, -1, 1, 1)


@dataclass(frozen=True)
class Columns:
    """The im2col matrix of a convolution's input, kept from the forward pass for the weight
    gradient (``dL/dW = G^T @ cols`` needs exactly it): ``matrix`` is (N*Ho*Wo, kh*kw*C) in
    the CPU path's NHWC order, or (N, C*kh*kw, Ho*Wo) for an input of few channels
    (``_columns_shape``), for the convolution ``geometry``."""

    matrix: np.ndarray
    geometry: _Geometry


# The forward keeps its im2col matrix for the weight gradient while it is at most this big
# (it is (kh*kw)/(s_h*s_w) times the input: 4x for the k=4, s=2 layers of a DCGAN).
_SAVED_COLUMNS_BYTES = 256 << 20


def _forward_saving_cpu(x: np.ndarray, w: np.ndarray, b, g: _Geometry):
    """``_forward_cpu`` for the whole batch at once, keeping the im2col matrix."""
    cols = np.empty(_columns_shape(g), dtype=x.dtype)
    return _forward_cpu(x, w, b, g, cols), Columns(cols, g)


def _backward_weight_cpu(gy: np.ndarray, x: np.ndarray | None, g: _Geometry,
                         columns: Columns | None = None) -> np.ndarray:
    """``G^T @ cols``, the batch split across threads, each slice's product summed."""
    if g.n * g.ho * g.wo == 0 or g.k == 0:
        return np.zeros((g.o, g.c, g.kh, g.kw), dtype=gy.dtype)
    l = g.ho * g.wo
    planes = _planes(g)

    def images(lo: int, hi: int) -> np.ndarray:
        if columns is None:
            return _backward_weight_images(gy[lo:hi], x[lo:hi], g.batch(hi - lo))
        if planes:
            return _planes_weight_product(gy[lo:hi], columns.matrix[lo:hi], g)
        gmat = np.empty(((hi - lo) * l, g.o), dtype=gy.dtype)
        _nhwc_rows(gy[lo:hi], g.batch(hi - lo), gmat)
        return np.matmul(gmat.T, columns.matrix[lo * l : hi * l])

    gw_mat = threads.parallel_sum(g.n, images, g.n * l * (g.k + g.o) * gy.itemsize)
    if planes:  # columns (c, i, j): the weight's own order
        return gw_mat.reshape(g.o, g.c, g.kh, g.kw)
    return np.ascontiguousarray(gw_mat.reshape(g.o, g.kh, g.kw, g.c).transpose(0, 3, 1, 2))


def _planes_weight_product(gy: np.ndarray, cols: np.ndarray, g: _Geometry) -> np.ndarray:
    """``sum_n gy[n] cols[n]^T`` (O, C*kh*kw) for the images of ``gy`` and their planes
    ``cols`` (n, C*kh*kw, Ho*Wo): each image's (O, Ho*Wo) gradient as it is stored times the
    transposed planes, summed over the images."""
    n = gy.shape[0]
    gmat = gy[:, :, : g.ho, : g.wo].reshape(n, g.o, g.ho * g.wo)
    return np.matmul(gmat, cols.transpose(0, 2, 1)).sum(axis=0)


def _backward_weight_images(gy: np.ndarray, x: np.ndarray, g: _Geometry) -> np.ndarray:
    """``G^T @ im2col(x)`` (O, kh*kw*C), or (O, C*kh*kw) for an input of few channels, for the
    images of ``x``, on the calling thread."""
    gw_mat = np.zeros((g.o, g.k), dtype=gy.dtype)
    chunks, step = _chunks(g, x.itemsize)
    l = g.ho * g.wo
    if _planes(g):
        cols_buf = np.empty((step, g.k, l), dtype=x.dtype)
        for lo, hi in chunks:
            cols = cols_buf[: hi - lo]
            _im2col_planes_cpu(x[lo:hi], g, cols)
            gw_mat += _planes_weight_product(gy[lo:hi], cols, g)
        return gw_mat
    cols_buf = np.empty((step * l, g.k), dtype=x.dtype)
    gmat_buf = np.empty((step * l, g.o), dtype=x.dtype)
    part = np.empty_like(gw_mat) if len(chunks) > 1 else gw_mat
    for lo, hi in chunks:
        m = (hi - lo) * l
        cols, gmat = cols_buf[:m], gmat_buf[:m]
        _im2col_cpu(x[lo:hi], g, cols)
        _nhwc_rows(gy[lo:hi], g, gmat)
        np.matmul(gmat.T, cols, out=part)  # dL/dW = G^T @ cols
        if part is not gw_mat:
            gw_mat += part
    return gw_mat


# --------------------------------------------------------------------------------------------
# CUDA: im2col / col2im kernels in cuda/conv.cu, products with cupy.matmul (cuBLAS)
# --------------------------------------------------------------------------------------------
# On the GPU the layout stays NCHW and the im2col matrix is stored transposed and
# channel-major, cols[(c, i, j), (n, p, q)] of shape (C*kh*kw, N*Ho*Wo): a thread per entry
# writes consecutive (p, q) positions, so its stores are coalesced, and the weight needs no
# reordering (w.reshape(O, C*kh*kw) is already the matrix).

_CUDA_SOURCE = "conv.cu"


def _cuda_geometry_args(g: _Geometry, n: int):
    i64 = np.int64
    return (
        i64(n), i64(g.c), i64(g.h), i64(g.w), i64(g.kh), i64(g.kw), i64(g.sh), i64(g.sw),
        i64(g.ph), i64(g.pw), i64(g.dh), i64(g.dw), i64(g.ho), i64(g.wo),
    )


def _cuda_chunks(g: _Geometry, itemsize: int):
    # Bound the GPU's im2col buffer too (256 MiB), so that a large batch does not run out of
    # device memory; the products stay big enough to keep cuBLAS busy.
    per_image = max(1, g.ho * g.wo * g.k * itemsize)
    step = max(1, min(g.n, (256 << 20) // per_image))
    return [(lo, min(g.n, lo + step)) for lo in range(0, g.n, step)]


def _im2col_cuda(x, g: _Geometry, lo: int, hi: int):
    import cupy

    n = hi - lo
    cols = cupy.empty((g.k, n * g.ho * g.wo), dtype=x.dtype)
    kern = _cuda.function(_CUDA_SOURCE, f"im2col_{_cuda.dtype_suffix(x.dtype)}")
    _cuda.launch_1d(kern, cols.size, (x[lo:hi], cols, *_cuda_geometry_args(g, n)))
    return cols


def _forward_cuda(x, w, b, g: _Geometry):
    import cupy

    x = cupy.ascontiguousarray(x)
    wmat = cupy.ascontiguousarray(w).reshape(g.o, g.k)
    y = cupy.empty((g.n, g.o, g.ho, g.wo), dtype=x.dtype)
    if y.size == 0:
        return y
    for lo, hi in _cuda_chunks(g, x.itemsize):
        cols = _im2col_cuda(x, g, lo, hi)
        ymat = cupy.matmul(wmat, cols)  # (O, n*Ho*Wo)
        y[lo:hi] = ymat.reshape(g.o, hi - lo, g.ho, g.wo).transpose(1, 0, 2, 3)
    if b is not None:
        y += b.reshape(1, g.o, 1, 1)
    return y


def _backward_input_cuda(gy, w, g: _Geometry):
    import cupy

    if g.n * g.c * g.h * g.w == 0 or g.ho * g.wo == 0 or g.o == 0:
        return cupy.zeros((g.n, g.c, g.h, g.w), dtype=gy.dtype)
    gx = cupy.empty((g.n, g.c, g.h, g.w), dtype=gy.dtype)
    wmat = cupy.ascontiguousarray(w).reshape(g.o, g.k)
    kern = _cuda.function(_CUDA_SOURCE, f"col2im_{_cuda.dtype_suffix(gy.dtype)}")
    for lo, hi in _cuda_chunks(g, gy.itemsize):
        n = hi - lo
        # G^T as (O, n*Ho*Wo), matching the (n, p, q) column order of cols.
        gmat = cupy.ascontiguousarray(gy[lo:hi, :, : g.ho, : g.wo].transpose(1, 0, 2, 3))
        gcols = cupy.matmul(wmat.T, gmat.reshape(g.o, n * g.ho * g.wo))  # (C*kh*kw, n*Ho*Wo)
        # col2im is a gather: one thread per input pixel sums the entries of the windows that
        # cover it and writes every pixel once, so gx needs no zeroing and no atomics.
        gx_chunk = gx[lo:hi]
        _cuda.launch_1d(kern, gx_chunk.size, (gcols, gx_chunk, *_cuda_geometry_args(g, n)))
    return gx


def _backward_weight_cuda(gy, x, g: _Geometry):
    import cupy

    x = cupy.ascontiguousarray(x)
    gw = cupy.zeros((g.o, g.k), dtype=x.dtype)
    for lo, hi in _cuda_chunks(g, x.itemsize):
        n = hi - lo
        if n * g.ho * g.wo == 0:
            continue
        cols = _im2col_cuda(x, g, lo, hi)
        gmat = cupy.ascontiguousarray(gy[lo:hi, :, : g.ho, : g.wo].transpose(1, 0, 2, 3))
        gw += cupy.matmul(gmat.reshape(g.o, n * g.ho * g.wo), cols.T)  # G^T @ cols
    return gw.reshape(g.o, g.c, g.kh, g.kw)


# --------------------------------------------------------------------------------------------
# public API: convolution
# --------------------------------------------------------------------------------------------


def _pointwise(g: _Geometry) -> bool:
    """A 1 x 1 convolution with stride 1 and no padding: per image, the matrix product
    y[n] = W x[n] of the (O, C) weight with the (C, H*W) image -- no im2col, no layout change,
    on either device."""
    return (g.kh == g.kw == 1 and g.sh == g.sw == 1 and g.ph == g.pw == 0
            and (g.ho, g.wo) == (g.h, g.w))  # (a transposed one may add output_padding rows)


def _forward(x, w, b, g: _Geometry):
    if _pointwise(g):
        y = threads.matmul(w.reshape(g.o, g.c), x.reshape(g.n, g.c, g.h * g.w))
        if b is not None:
            y += b.reshape(1, g.o, 1)
        return y.reshape(g.n, g.o, g.h, g.w)
    if _cuda.is_cupy_array(x):
        return _forward_cuda(x, w, b, g)
    return _forward_cpu(x, w, b, g)


def _backward_input(gy, w, g: _Geometry, b=None):
    if _pointwise(g):  # gx[n] = W^T gy[n]
        gx = threads.matmul(w.reshape(g.o, g.c).T, gy.reshape(g.n, g.o, g.h * g.w))
        if b is not None:
            gx += b.reshape(1, g.c, 1)
        return gx.reshape(g.n, g.c, g.h, g.w)
    if _cuda.is_cupy_array(gy):
        gx = _backward_input_cuda(gy, w, g)
        if b is not None:
            gx += b.reshape(1, -1, 1, 1)
        return gx
    return _backward_input_cpu(gy, w, g, b)


def _backward_weight(gy, x, g: _Geometry, columns: Columns | None = None):
    if columns is not None:
        return _backward_weight_cpu(gy, None, g, columns)
    if _pointwise(g):  # gw = sum_n gy[n] x[n]^T, a product over the (n, pixel) pairs
        xp = _cuda.get_array_module(x)
        gy3, x3 = gy.reshape(g.n, g.o, g.h * g.w), x.reshape(g.n, g.c, g.h * g.w)

        def images(lo: int, hi: int):
            return xp.tensordot(gy3[lo:hi], x3[lo:hi], axes=([0, 2], [0, 2]))

        if _cuda.is_cupy_array(x) or g.n == 0:
            return images(0, g.n).reshape(g.o, g.c, 1, 1)
        return threads.parallel_sum(g.n, images, 4 * (gy.nbytes + x.nbytes)).reshape(
            g.o, g.c, 1, 1)
    if _cuda.is_cupy_array(x):
        return _backward_weight_cuda(gy, x, g)
    return _backward_weight_cpu(gy, x, g)


def conv2d_forward(
    x: Array, w: Array, b: Array | None = None, stride: IntOr2 = 1, padding: IntOr2 = 0,
    dilation: IntOr2 = 1,
) -> Array:
    r"""2-D convolution (cross-correlation) with zero padding, NCHW.

    ``y[n, o, p, q] = b[o] + sum_{c,i,j} w[o, c, i, j] xpad[n, c, s_h p + d_h i, s_w q + d_w j]``

    Args:
        x: input (N, C, H, W), float32 or float64 (NumPy or CuPy).
        w: weight (O, C, kh, kw).
        b: bias (O,) or None.
        stride, padding, dilation: an int or an (h, w) pair.

    Returns:
        y of shape (N, O, Ho, Wo) and the dtype of ``x``, with
        ``Ho = conv_output_size(H, kh, s_h, pad_h, d_h)``.

    Computed as ``im2col(x) @ W^T`` (see the module docstring).
    """
    return _forward(x, w, b, _forward_geometry(x, w, b, stride, padding, dilation))


def _forward_geometry(x, w, b, stride, padding, dilation) -> _Geometry:
    """The checked geometry of ``conv2d(x, w, b)``."""
    op = "conv2d"
    _check_ndim(op, "input x", x, 4, "(N, C, H, W)")
    _check_ndim(op, "weight w", w, 4, "(out_channels, in_channels, kh, kw)")
    _check_arrays(op, x=x, w=w, b=b)
    g = _geometry(op, x.shape, w.shape, stride, padding, dilation)
    _check_bias(op, b, g.o, w.shape)
    return g


def conv2d_forward_with_columns(
    x: Array, w: Array, b: Array | None = None, stride: IntOr2 = 1, padding: IntOr2 = 0,
    dilation: IntOr2 = 1,
) -> tuple[Array, Columns | None]:
    """:func:`conv2d_forward`, also returning the im2col matrix it multiplied, for
    :func:`conv2d_backward_weight` (``columns=``) to reuse instead of copying the windows of
    ``x`` again: a training step's weight gradient then costs one product.

    The matrix is (kh*kw)/(s_h*s_w) times the size of ``x`` and lives as long as it is held,
    so it is kept only on the CPU path (on a GPU the im2col kernel is cheap), only where the
    forward makes one (not a 1 x 1 convolution) and only up to ``_SAVED_COLUMNS_BYTES``;
    otherwise the second value is None and the weight gradient recomputes it.
    """
    g = _forward_geometry(x, w, b, stride, padding, dilation)
    size = g.n * g.ho * g.wo * g.k
    if _cuda.is_cupy_array(x) or _pointwise(g) or size == 0 or g.o == 0 or \
            size * x.itemsize > _SAVED_COLUMNS_BYTES:
        return _forward(x, w, b, g), None
    return _forward_saving_cpu(x, w, b, g)


def conv2d_backward_input(
    gy: Array, w: Array, x_shape: tuple[int, int, int, int], stride: IntOr2 = 1,
    padding: IntOr2 = 0, dilation: IntOr2 = 1,
) -> Array:
    r"""Gradient of :func:`conv2d_forward` with respect to its input.

    ``dL/dx = col2im(G @ W)``, i.e.
    ``gx[n, c, h, v] = sum_{o,i,j,p,q: s_h p + d_h i = h + pad_h, s_w q + d_w j = v + pad_w}
    w[o, c, i, j] gy[n, o, p, q]``.

    This is also the forward pass of a transposed convolution.

    Args:
        gy: gradient of the output (N, O, Ho, Wo).
        w: weight (O, C, kh, kw).
        x_shape: shape (N, C, H, W) of the convolution's input; several H give the same Ho
            when the stride is > 1, so it must be given.

    Returns:
        gx of shape ``x_shape``, dtype of ``gy``.
    """
    op = "conv2d_backward_input"
    _check_ndim(op, "gy", gy, 4, "(N, O, Ho, Wo)")
    _check_ndim(op, "weight w", w, 4, "(out_channels, in_channels, kh, kw)")
    _check_arrays(op, gy=gy, w=w)
    x_shape = _check_shape_tuple(op, "x_shape", x_shape)
    g = _geometry(op, x_shape, w.shape, stride, padding, dilation)
    _check_grad_shape(op, gy, g, "gy")
    return _backward_input(gy, w, g)


def conv2d_backward_weight(
    gy: Array, x: Array, w_shape: tuple[int, int, int, int], stride: IntOr2 = 1,
    padding: IntOr2 = 0, dilation: IntOr2 = 1, columns: Columns | None = None,
) -> Array:
    r"""Gradient of :func:`conv2d_forward` with respect to its weight.

    ``dL/dW = G^T @ im2col(x)``, i.e.
    ``gw[o, c, i, j] = sum_{n,p,q} gy[n, o, p, q] xpad[n, c, s_h p + d_h i, s_w q + d_w j]``.

    Args:
        gy: gradient of the output (N, O, Ho, Wo).
        x: the convolution's input (N, C, H, W).
        w_shape: the weight's shape (O, C, kh, kw).
        columns: what :func:`conv2d_forward_with_columns` returned for this ``x``, or None;
            it must be of this convolution (same shapes and hyper-parameters).

    Returns:
        gw of shape ``w_shape``, dtype of ``x``.
    """
    op = "conv2d_backward_weight"
    _check_ndim(op, "gy", gy, 4, "(N, O, Ho, Wo)")
    _check_ndim(op, "input x", x, 4, "(N, C, H, W)")
    _check_arrays(op, gy=gy, x=x)
    w_shape = _check_shape_tuple(op, "w_shape", w_shape)
    g = _geometry(op, x.shape, w_shape, stride, padding, dilation)
    _check_grad_shape(op, gy, g, "gy")
    if columns is not None:
        if not isinstance(columns, Columns):
            raise TypeError(f"{op}: columns must be what conv2d_forward_with_columns returned "
                            f"(a Columns or None), got {type(columns).__name__}")
        if columns.geometry != g:
            raise ValueError(f"{op}: the saved columns are of another convolution "
                             f"({columns.geometry}), not of this one ({g})")
        if columns.matrix.dtype != gy.dtype or _cuda.is_cupy_array(gy):
            where = "a cupy (cuda)" if _cuda.is_cupy_array(gy) else "a numpy"
            raise TypeError(f"{op}: the saved columns are a {columns.matrix.dtype} numpy array, "
                            f"gy is {where} {gy.dtype} array")
    return _backward_weight(gy, x, g, columns)


def conv2d_backward_bias(gy: Array) -> Array:
    r"""Gradient of :func:`conv2d_forward` (or the transposed convolution) w.r.t. its bias.

    ``gb[o] = sum_{n,p,q} gy[n, o, p, q]``: the bias is added at every output pixel.
    """
    _check_ndim("conv2d_backward_bias", "gy", gy, 4, "(N, O, Ho, Wo)")
    return sum_axes(gy, (0, 2, 3))


# --------------------------------------------------------------------------------------------
# public API: transposed convolution, the adjoint of convolution
# --------------------------------------------------------------------------------------------


def _transpose_geometry(op, x_shape, w_shape, stride, padding, output_padding, dilation,
                        out_hw=None):
    """Geometry of the convolution that the transposed convolution x -> y is the adjoint of.

    That convolution maps y (N, C_out, Hy, Wy) to x (N, C_in, H, W) with the weight
    (C_in, C_out, kh, kw) read as (O, C, kh, kw).
    """
    s, p, d = _check_hyper(op, stride, padding, dilation)
    opad = _check_output_padding(op, output_padding, s, d)
    n, cin, h, w = x_shape
    wcin, cout, kh, kw = w_shape
    if cin != wcin:
        raise ValueError(
            f"{op}: input of shape {tuple(x_shape)} has {cin} channels but weight of shape "
            f"{tuple(w_shape)} expects {wcin} input channels "
            f"(a transposed convolution's weight is (in, out, kh, kw))"
        )
    if out_hw is None:
        out_hw = (
            conv_transpose_output_size(h, kh, s[0], p[0], opad[0], d[0]),
            conv_transpose_output_size(w, kw, s[1], p[1], opad[1], d[1]),
        )
    if min(out_hw) < 1 or h < 1 or w < 1:
        raise ValueError(
            f"{op}: input of shape {tuple(x_shape)} with weight of shape {tuple(w_shape)}, "
            f"stride {s}, padding {p}, output_padding {opad}, dilation {d} gives an empty "
            f"output of size {tuple(out_hw)}"
        )
    # The adjoint convolution reads y (padded) and produces h x w outputs: the first h x w
    # of its windows (output_padding >= stride, allowed when dilation > output_padding, adds
    # rows to y that reach one more window, which belongs to no input pixel).
    y_shape = (n, cout, out_hw[0], out_hw[1])
    g = _geometry(op, y_shape, (cin, cout, kh, kw), s, p, d, out_hw=None)
    if g.ho < h or g.wo < w:
        raise ValueError(
            f"{op}: output of shape {y_shape} is too small for an input of shape "
            f"{tuple(x_shape)} (weight {tuple(w_shape)}, stride {s}, padding {p}, dilation {d})"
        )
    return _geometry(op, y_shape, (cin, cout, kh, kw), s, p, d, out_hw=(h, w))


def conv_transpose2d_forward(
    x: Array, w: Array, b: Array | None = None, stride: IntOr2 = 1, padding: IntOr2 = 0,
    output_padding: IntOr2 = 0, dilation: IntOr2 = 1,
) -> Array:
    r"""Transposed 2-D convolution ("deconvolution"), NCHW, as PyTorch's ``conv_transpose2d``.

    The adjoint of :func:`conv2d_forward`: every input pixel scatters ``x[n, c, h, v] *
    w[c, :, i, j]`` onto output pixel ``(s_h h + d_h i - pad_h, s_w v + d_w j - pad_w)``:

    ``y[n, o, a, e] = b[o] + sum_{c,i,j,h,v: s_h h + d_h i = a + pad_h, s_w v + d_w j = e + pad_w}
    x[n, c, h, v] w[c, o, i, j]``

    Args:
        x: input (N, C_in, H, W).
        w: weight (C_in, C_out, kh, kw), as PyTorch.
        b: bias (C_out,) or None.
        output_padding: extra rows/columns at the bottom/right of the output; must be smaller
            than the stride or the dilation.

    Returns:
        y of shape (N, C_out, Hy, Wy), ``Hy = conv_transpose_output_size(H, kh, s_h, pad_h,
        out_pad_h, d_h)``.

    It is ``conv2d_backward_input(x, w, y.shape, ...)``: col2im(X @ W) with the roles of
    input and output exchanged.
    """
    op = "conv_transpose2d"
    _check_ndim(op, "input x", x, 4, "(N, C_in, H, W)")
    _check_ndim(op, "weight w", w, 4, "(in_channels, out_channels, kh, kw)")
    _check_arrays(op, x=x, w=w, b=b)
    g = _transpose_geometry(op, x.shape, w.shape, stride, padding, output_padding, dilation)
    _check_bias(op, b, g.c, w.shape)
    return _backward_input(x, w, g, b)


def conv_transpose2d_backward_input(
    gy: Array, w: Array, stride: IntOr2 = 1, padding: IntOr2 = 0, dilation: IntOr2 = 1,
    output_padding: IntOr2 = 0,
) -> Array:
    r"""Gradient of :func:`conv_transpose2d_forward` with respect to its input.

    The adjoint of the adjoint is the convolution itself:
    ``gx = conv2d_forward(gy, w, stride=stride, padding=padding, dilation=dilation)``,
    the weight (C_in, C_out, kh, kw) read as a convolution weight (O=C_in, C=C_out, kh, kw).

    ``output_padding`` (the forward's) matters only in the rare case output_padding >=
    stride (allowed when dilation > output_padding): the convolution of ``gy`` then has one
    more row/column than the transposed convolution's input, which is dropped.
    """
    op = "conv_transpose2d_backward_input"
    _check_ndim(op, "gy", gy, 4, "(N, C_out, Hy, Wy)")
    _check_ndim(op, "weight w", w, 4, "(in_channels, out_channels, kh, kw)")
    _check_arrays(op, gy=gy, w=w)
    s, p, d = _check_hyper(op, stride, padding, dilation)
    opad = _check_output_padding(op, output_padding, s, d)
    g = _geometry(op, gy.shape, w.shape, s, p, d)
    # Input size of the transposed convolution: conv_output_size(Hy) = H + output_padding//s.
    ho, wo = g.ho - opad[0] // s[0], g.wo - opad[1] // s[1]
    if (ho, wo) != (g.ho, g.wo):
        g = _geometry(op, gy.shape, w.shape, s, p, d, out_hw=(ho, wo))
    return _forward(gy, w, None, g)


def conv_transpose2d_backward_weight(
    gy: Array, x: Array, w_shape: tuple[int, int, int, int], stride: IntOr2 = 1,
    padding: IntOr2 = 0, dilation: IntOr2 = 1,
) -> Array:
    r"""Gradient of :func:`conv_transpose2d_forward` with respect to its weight.

    With y = conv_transpose2d(x, w) = conv2d_backward_input(x, w), the map w -> y is the same
    bilinear form as the convolution's with input and output exchanged:
    ``gw = conv2d_backward_weight(x, gy, w_shape)`` -- ``gy`` plays the convolution's input,
    ``x`` its output gradient:

    ``gw[c, o, i, j] = sum_{n,h,v} x[n, c, h, v] gypad[n, o, s_h h + d_h i, s_w v + d_w j]``.

    Args:
        gy: gradient of the output (N, C_out, Hy, Wy).
        x: the transposed convolution's input (N, C_in, H, W).
        w_shape: (C_in, C_out, kh, kw).
    """
    op = "conv_transpose2d_backward_weight"
    _check_ndim(op, "gy", gy, 4, "(N, C_out, Hy, Wy)")
    _check_ndim(op, "input x", x, 4, "(N, C_in, H, W)")
    _check_arrays(op, gy=gy, x=x)
    w_shape = _check_shape_tuple(op, "w_shape", w_shape)
    s, p, d = _check_hyper(op, stride, padding, dilation)
    if tuple(gy.shape[:2]) != (x.shape[0], w_shape[1]):
        raise ValueError(
            f"{op}: gy of shape {tuple(gy.shape)} does not match input of shape "
            f"{tuple(x.shape)} and weight of shape {tuple(w_shape)} (expected "
            f"({x.shape[0]}, {w_shape[1]}, ...))"
        )
    n, cin, h, w = x.shape
    hy, wy = gy.shape[2:]
    # Recover output_padding from the shapes and check it is one the forward could have used.
    opad = (hy - conv_transpose_output_size(h, w_shape[2], s[0], p[0], 0, d[0]),
            wy - conv_transpose_output_size(w, w_shape[3], s[1], p[1], 0, d[1]))
    if min(opad) < 0 or any(opad[a] >= s[a] and opad[a] >= d[a] for a in range(2)):
        raise ValueError(
            f"{op}: gy of shape {tuple(gy.shape)} is not the output shape of a transposed "
            f"convolution of an input of shape {tuple(x.shape)} with a weight of shape "
            f"{tuple(w_shape)} (stride {s}, padding {p}, dilation {d})"
        )
    g = _transpose_geometry(op, x.shape, w_shape, s, p, opad, d, out_hw=(hy, wy))
    return _backward_weight(x, gy, g)
