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
dilation. Copying every receptive field into one row of a matrix ``cols`` (*im2col*) makes it
one matrix product, and its two gradients two more, with G = dL/dY:

    Y        = cols @ W^T      (+ b)
    dL/dW    = G^T @ cols
    dL/dx    = col2im(G @ W)

where *col2im*, the adjoint of im2col, adds every window's entry back onto the pixel it came
from. A **transposed convolution** is the adjoint of a convolution: ``conv_transpose2d(x, w)``
is exactly ``conv2d_backward_input(x, w)``, and its two gradients are a plain convolution and
a weight gradient with the roles of input and output swapped.

The pages of this package
-------------------------
``geometry``         output sizes, argument checks, ``_Geometry`` (one convolution's shapes)
``cpu_forward``      im2col and the forward product, in NHWC or on NCHW planes; ``Columns``
``cpu_input_grad``   col2im and the other input-gradient paths, and the choice among them
``cpu_weight_grad``  G^T @ cols
``cuda``             the same three products on the GPU
``dispatch``         the 1 x 1 shortcut and the choice of device
``PERFORMANCE.md``   the measurements behind every threshold

``kernels.reference.conv`` computes the same functions the textbook way (a strided window view
and a loop over the kernel taps); the fast paths here are tested equal to it, and with
``SCRATCHGEN_REFERENCE=1`` (or ``kernels.reference.use(True)``) every function below runs it.
"""
from __future__ import annotations

from .. import _cuda, reference
from ..reduce import sum_axes
from .cpu_forward import Columns, _forward_saving_cpu, _keeps_columns
from .dispatch import _backward_input, _backward_weight, _forward, _pointwise
from .geometry import (
    Array, IntOr2, _check_arrays, _check_bias, _check_grad_shape, _check_hyper, _check_ndim,
    _check_output_padding, _check_shape_tuple, _Geometry, _geometry, _transpose_geometry,
    conv_output_size, conv_transpose_output_size,
)

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
    if reference.enabled():
        return reference.conv.conv2d_forward(x, w, b, stride, padding, dilation)
    return _forward(x, w, b, _forward_geometry(x, w, b, stride, padding, dilation))


def _forward_geometry(x, w, b, stride, padding, dilation) -> _Geometry:
    """The checked geometry of ``conv2d(x, w, b)``."""
    op = "conv2d"
    _check_ndim(op, "input x", x, 4, "(N, C, H, W)")
    _check_ndim(op, "weight w", w, 4, "(out_channels, in_channels, kh, kw)")
    _check_arrays(op, x=x, w=w, b=b)
    geo = _geometry(op, x.shape, w.shape, stride, padding, dilation)
    _check_bias(op, b, geo.o, w.shape)
    return geo


def conv2d_forward_with_columns(
    x: Array, w: Array, b: Array | None = None, stride: IntOr2 = 1, padding: IntOr2 = 0,
    dilation: IntOr2 = 1,
) -> tuple[Array, Columns | None]:
    """:func:`conv2d_forward`, also returning the im2col matrix it multiplied, for
    :func:`conv2d_backward_weight` (``columns=``) to reuse instead of copying the windows of
    ``x`` again: a training step's weight gradient then costs one product.

    The matrix is (kh*kw)/(s_h*s_w) times the size of ``x`` and lives as long as it is held,
    so it is kept only on the CPU path (on a GPU the im2col kernel is cheap), only where the
    forward makes one (not a 1 x 1 convolution) and only up to a size budget
    (``cpu_forward._keeps_columns``); otherwise the second value is None and the weight
    gradient recomputes it.
    """
    if reference.enabled():
        return reference.conv.conv2d_forward_with_columns(x, w, b, stride, padding, dilation)
    geo = _forward_geometry(x, w, b, stride, padding, dilation)
    if _cuda.is_cupy_array(x) or _pointwise(geo) or not _keeps_columns(geo, x.itemsize):
        return _forward(x, w, b, geo), None
    return _forward_saving_cpu(x, w, b, geo)


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
    if reference.enabled():
        return reference.conv.conv2d_backward_input(gy, w, x_shape, stride, padding, dilation)
    op = "conv2d_backward_input"
    _check_ndim(op, "gy", gy, 4, "(N, O, Ho, Wo)")
    _check_ndim(op, "weight w", w, 4, "(out_channels, in_channels, kh, kw)")
    _check_arrays(op, gy=gy, w=w)
    x_shape = _check_shape_tuple(op, "x_shape", x_shape)
    geo = _geometry(op, x_shape, w.shape, stride, padding, dilation)
    _check_grad_shape(op, gy, geo, "gy")
    return _backward_input(gy, w, geo)


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
    if reference.enabled():
        return reference.conv.conv2d_backward_weight(gy, x, w_shape, stride, padding, dilation)
    op = "conv2d_backward_weight"
    _check_ndim(op, "gy", gy, 4, "(N, O, Ho, Wo)")
    _check_ndim(op, "input x", x, 4, "(N, C, H, W)")
    _check_arrays(op, gy=gy, x=x)
    w_shape = _check_shape_tuple(op, "w_shape", w_shape)
    geo = _geometry(op, x.shape, w_shape, stride, padding, dilation)
    _check_grad_shape(op, gy, geo, "gy")
    if columns is not None:
        if not isinstance(columns, Columns):
            raise TypeError(f"{op}: columns must be what conv2d_forward_with_columns returned "
                            f"(a Columns or None), got {type(columns).__name__}")
        if columns.geometry != geo:
            raise ValueError(f"{op}: the saved columns are of another convolution "
                             f"({columns.geometry}), not of this one ({geo})")
        if columns.matrix.dtype != gy.dtype or _cuda.is_cupy_array(gy):
            where = "a cupy (cuda)" if _cuda.is_cupy_array(gy) else "a numpy"
            raise TypeError(f"{op}: the saved columns are a {columns.matrix.dtype} numpy array, "
                            f"gy is {where} {gy.dtype} array")
    return _backward_weight(gy, x, geo, columns)


def conv2d_backward_bias(gy: Array) -> Array:
    r"""Gradient of :func:`conv2d_forward` (or the transposed convolution) w.r.t. its bias.

    ``gb[o] = sum_{n,p,q} gy[n, o, p, q]``: the bias is added at every output pixel.
    """
    if reference.enabled():
        return reference.conv.conv2d_backward_bias(gy)
    _check_ndim("conv2d_backward_bias", "gy", gy, 4, "(N, O, Ho, Wo)")
    return sum_axes(gy, (0, 2, 3))



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
    if reference.enabled():
        return reference.conv.conv_transpose2d_forward(
            x, w, b, stride, padding, output_padding, dilation)
    op = "conv_transpose2d"
    _check_ndim(op, "input x", x, 4, "(N, C_in, H, W)")
    _check_ndim(op, "weight w", w, 4, "(in_channels, out_channels, kh, kw)")
    _check_arrays(op, x=x, w=w, b=b)
    geo = _transpose_geometry(op, x.shape, w.shape, stride, padding, output_padding, dilation)
    _check_bias(op, b, geo.c, w.shape)
    return _backward_input(x, w, geo, b)


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
    if reference.enabled():
        return reference.conv.conv_transpose2d_backward_input(
            gy, w, stride, padding, dilation, output_padding)
    op = "conv_transpose2d_backward_input"
    _check_ndim(op, "gy", gy, 4, "(N, C_out, Hy, Wy)")
    _check_ndim(op, "weight w", w, 4, "(in_channels, out_channels, kh, kw)")
    _check_arrays(op, gy=gy, w=w)
    s, p, d = _check_hyper(op, stride, padding, dilation)
    opad = _check_output_padding(op, output_padding, s, d)
    geo = _geometry(op, gy.shape, w.shape, s, p, d)
    # Input size of the transposed convolution: conv_output_size(Hy) = H + output_padding//s.
    ho, wo = geo.ho - opad[0] // s[0], geo.wo - opad[1] // s[1]
    if (ho, wo) != (geo.ho, geo.wo):
        geo = _geometry(op, gy.shape, w.shape, s, p, d, out_hw=(ho, wo))
    return _forward(gy, w, None, geo)


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
    if reference.enabled():
        return reference.conv.conv_transpose2d_backward_weight(
            gy, x, w_shape, stride, padding, dilation)
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
    geo = _transpose_geometry(op, x.shape, w_shape, s, p, opad, d, out_hw=(hy, wy))
    return _backward_weight(x, gy, geo)
