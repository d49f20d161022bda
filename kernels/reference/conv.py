r"""Convolution, the textbook way: im2col, col2im and three matrix products.

A convolution (a cross-correlation, as in every deep-learning library) of x (N, C, H, W) with
w (O, C, kh, kw), stride s, zero padding p and dilation d is

    y[n, o, p, q] = b[o] + sum_{c,i,j} w[o, c, i, j] xpad[n, c, s_h p + d_h i, s_w q + d_w j]

with Ho = floor((H + 2 p_h - d_h (kh - 1) - 1) / s_h) + 1 output rows (and as many columns).

**im2col** lays the receptive field of every output pixel out as one column of a matrix:
cols[n] has shape (C*kh*kw, Ho*Wo), row (c, i, j), column (p, q) holding
xpad[n, c, s_h p + d_h i, s_w q + d_w j]. With W the weight reshaped to (O, C*kh*kw), the
three products of a convolution are, per image n, with dY[n] the output gradient (O, Ho*Wo):

    forward          y[n]  = W cols[n] + b
    weight gradient  dL/dW = sum_n dY[n] cols[n]^T
    input gradient   dL/dx = col2im(W^T dY[n])

**col2im** is the adjoint of im2col: im2col copied each pixel into every window that covers
it, so col2im adds every window's entry back onto the pixel it came from. Kernel tap (i, j)
of all windows lands on the strided pixels xpad[:, :, d_h i + s_h p, d_w j + s_w q], so the
adjoint is a loop over the kh*kw taps, each adding one (Ho, Wo) block of rows.

A **transposed convolution** is the adjoint of a convolution: conv_transpose2d(x, w) =
col2im(W^T x), and its gradients are a convolution and a weight gradient with the roles of
input and output swapped. Groups are not supported (nor by the fast kernels).
"""
from __future__ import annotations

from .. import _cuda


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if not isinstance(v, (tuple, list)) else (int(v[0]), int(v[1]))


def conv_output_size(h: int, k: int, stride: int, padding: int, dilation: int) -> int:
    """floor((h + 2 padding - dilation (k - 1) - 1) / stride) + 1."""
    return (h + 2 * padding - dilation * (k - 1) - 1) // stride + 1


def conv_transpose_output_size(h: int, k: int, stride: int, padding: int, output_padding: int,
                               dilation: int) -> int:
    """(h - 1) stride - 2 padding + dilation (k - 1) + output_padding + 1."""
    return (h - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1


def im2col(x, kernel_size, stride=1, padding=0, dilation=1, out_hw=None):
    """cols (N, C*kh*kw, Ho*Wo): cols[n, (c, i, j), (p, q)] = xpad[n, c, s_h p + d_h i,
    s_w q + d_w j]. ``out_hw`` keeps only the first (Ho, Wo) windows."""
    xp = _cuda.get_array_module(x)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = map(_pair, (kernel_size, stride, padding, dilation))
    n, c = x.shape[:2]
    xpad = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    span = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    # every span_h x span_w block of xpad, then every s-th block and every d-th pixel of it:
    # windows[n, c, p, q, i, j] = xpad[n, c, s_h p + d_h i, s_w q + d_w j]   (a view)
    blocks = xp.lib.stride_tricks.sliding_window_view(xpad, span, axis=(2, 3))
    windows = blocks[:, :, ::sh, ::sw, ::dh, ::dw]
    if out_hw is not None:
        windows = windows[:, :, : out_hw[0], : out_hw[1]]
    ho, wo = windows.shape[2:4]
    return windows.transpose(0, 1, 4, 5, 2, 3).reshape(n, c * kh * kw, ho * wo)


def col2im(cols, x_shape, kernel_size, stride, padding, dilation, out_hw):
    """The adjoint of :func:`im2col`: gx[n, c, y, v] = sum of cols[n, (c, i, j), (p, q)] over
    the windows (p, q) and taps (i, j) with s_h p + d_h i = y + p_h, s_w q + d_w j = v + p_w."""
    xp = _cuda.get_array_module(cols)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = map(_pair, (kernel_size, stride, padding, dilation))
    n, c, h, w = x_shape
    ho, wo = out_hw
    cols = cols.reshape(n, c, kh, kw, ho, wo)
    gxpad = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            rows = slice(dh * i, dh * i + sh * (ho - 1) + 1, sh)
            columns = slice(dw * j, dw * j + sw * (wo - 1) + 1, sw)
            gxpad[:, :, rows, columns] += cols[:, :, i, j]     # tap (i, j) of every window
    return gxpad[:, :, ph : ph + h, pw : pw + w]


def conv2d_forward(x, w, b=None, stride=1, padding=0, dilation=1):
    """y[n] = W cols[n] + b: the convolution of x (N, C, H, W) with w (O, C, kh, kw)."""
    o, c, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = map(_pair, (stride, padding, dilation))
    ho = conv_output_size(x.shape[2], kh, sh, ph, dh)
    wo = conv_output_size(x.shape[3], kw, sw, pw, dw)
    cols = im2col(x, (kh, kw), stride, padding, dilation)      # (N, C*kh*kw, Ho*Wo)
    y = w.reshape(o, c * kh * kw) @ cols                         # (N, O, Ho*Wo)
    if b is not None:
        y = y + b.reshape(1, o, 1)
    return y.reshape(x.shape[0], o, ho, wo)


def conv2d_forward_with_columns(x, w, b=None, stride=1, padding=0, dilation=1):
    """:func:`conv2d_forward` and None: the reference keeps no columns, the weight gradient
    builds them again."""
    return conv2d_forward(x, w, b, stride, padding, dilation), None


def conv2d_backward_input(gy, w, x_shape, stride=1, padding=0, dilation=1):
    """dL/dx = col2im(W^T dY), of shape ``x_shape``."""
    o, c, kh, kw = w.shape
    n, _, ho, wo = gy.shape
    dcols = w.reshape(o, c * kh * kw).T @ gy.reshape(n, o, ho * wo)   # (N, C*kh*kw, Ho*Wo)
    return col2im(dcols, tuple(x_shape), (kh, kw), stride, padding, dilation, (ho, wo))


def conv2d_backward_weight(gy, x, w_shape, stride=1, padding=0, dilation=1, columns=None):
    """dL/dW = sum_n dY[n] cols[n]^T, reshaped to (O, C, kh, kw). (``columns`` is ignored:
    see :func:`conv2d_forward_with_columns`.)"""
    o, c, kh, kw = w_shape
    n, _, ho, wo = gy.shape
    cols = im2col(x, (kh, kw), stride, padding, dilation, (ho, wo))
    dw = (gy.reshape(n, o, ho * wo) @ cols.transpose(0, 2, 1)).sum(axis=0)
    return dw.reshape(o, c, kh, kw)


def conv2d_backward_bias(gy):
    """dL/db[o] = sum_{n,p,q} dY[n, o, p, q]."""
    return gy.sum(axis=(0, 2, 3))


def conv_transpose2d_forward(x, w, b=None, stride=1, padding=0, output_padding=0, dilation=1):
    """y = col2im(W^T x) + b: the adjoint of the convolution with weight w (C_in, C_out, kh,
    kw) read as (O, C, kh, kw), whose input has the transposed convolution's output size."""
    (sh, sw), (ph, pw), (oph, opw), (dh, dw) = map(
        _pair, (stride, padding, output_padding, dilation))
    n, _, h, v = x.shape
    y_shape = (n, w.shape[1],
               conv_transpose_output_size(h, w.shape[2], sh, ph, oph, dh),
               conv_transpose_output_size(v, w.shape[3], sw, pw, opw, dw))
    y = conv2d_backward_input(x, w, y_shape, stride, padding, dilation)
    return y if b is None else y + b.reshape(1, -1, 1, 1)


def conv_transpose2d_backward_input(gy, w, stride=1, padding=0, dilation=1, output_padding=0):
    """dL/dx = conv2d(gy, w): the adjoint of the adjoint is the convolution (its last row and
    column dropped when output_padding >= stride gave the output one more window)."""
    (sh, sw), (oph, opw) = _pair(stride), _pair(output_padding)
    gx = conv2d_forward(gy, w, None, stride, padding, dilation)
    return gx[:, :, : gx.shape[2] - oph // sh, : gx.shape[3] - opw // sw]


def conv_transpose2d_backward_weight(gy, x, w_shape, stride=1, padding=0, dilation=1):
    """dL/dW = sum_n x[n] cols(gy)[n]^T: the convolution's weight gradient with gy as its
    input and x as its output gradient."""
    return conv2d_backward_weight(x, gy, w_shape, stride, padding, dilation)
