r"""Max and average pooling, the textbook way, with PyTorch's conventions.

Along one axis of length n (kernel k, stride s, padding p, dilation d), output o looks at the
input positions o s - p + t d, t = 0 .. k-1, and there are

    n_out = floor((n + 2p - d (k-1) - 1) / s) + 1        (ceil in ceil_mode)

outputs, where in ceil mode a last window that would start inside the right padding is
dropped. Then, over each window of x (..., H, W):

    max pooling       y[o, q] = max_{a,b} xpad[o s_h + a d_h, q s_w + b d_w]      (pad = -inf)
    average pooling   y[o, q] = (1 / D[o, q]) sum_{a,b} xpad[o s_h + a, q s_w + b]  (pad = 0)

with D the window's size: including the zero padding (``count_include_pad``) but never a
ceil-mode window's overhang beyond it, or only its real pixels, or ``divisor_override``.

Both gradients are adjoints of the forward passes. Max pooling sends each output's gradient
to the one pixel it took its value from (the first maximum in window order: ``argmax``, the
flat index i W + j in the input plane); average pooling spreads gy / D over the window.
"""
from __future__ import annotations

from .. import _cuda


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if not isinstance(v, (tuple, list)) else (int(v[0]), int(v[1]))


def _out_size(n: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    out = (n + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= n + p:  # the last window would start in the padding
        out -= 1
    return out


def _windows(xp, x, k, s, p, d, out, fill):
    """windows[..., o, q, a, b] = xpad[..., o s_h + a d_h, q s_w + b d_w], the input padded
    with ``fill`` far enough for every window (a ceil-mode window may hang past the padding)."""
    h, w = x.shape[-2:]
    extent = [max(p[i] + n, (out[i] - 1) * s[i] + d[i] * (k[i] - 1) + 1) - p[i] - n
              for i, n in enumerate((h, w))]
    widths = [(0, 0)] * (x.ndim - 2) + [(p[0], extent[0]), (p[1], extent[1])]
    xpad = xp.pad(x, widths, constant_values=fill)
    span = (d[0] * (k[0] - 1) + 1, d[1] * (k[1] - 1) + 1)
    blocks = xp.lib.stride_tricks.sliding_window_view(xpad, span, axis=(-2, -1))
    return blocks[..., ::s[0], ::s[1], ::d[0], ::d[1]][..., : out[0], : out[1], :, :]


def max_pool2d_forward(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """(y, argmax): the maximum of every window and the flat index of its first maximum (-1
    for a window lying entirely in the padding)."""
    xp = _cuda.get_array_module(x)
    k = _pair(kernel_size)
    s, p, d = (k if stride is None else _pair(stride)), _pair(padding), _pair(dilation)
    h, w = x.shape[-2:]
    out = tuple(_out_size(n, k[i], s[i], p[i], d[i], ceil_mode) for i, n in enumerate((h, w)))
    windows = _windows(xp, x, k, s, p, d, out, -xp.inf)
    values = windows.reshape(windows.shape[:-2] + (k[0] * k[1],))    # (..., oh, ow, taps)
    y = values.max(axis=-1)                                             # NaN propagates
    # input row and column of tap (a, b) of window (o, q), and whether it is a real pixel
    rows = (xp.arange(out[0]) * s[0] - p[0])[:, None, None, None] + xp.arange(k[0])[:, None] * d[0]
    cols = (xp.arange(out[1]) * s[1] - p[1])[None, :, None, None] + xp.arange(k[1])[None, :] * d[1]
    real = ((rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)).reshape(out + (-1,))
    flat = (rows * w + cols).reshape(out + (-1,))
    hit = ((values == y[..., None]) | xp.isnan(values)) & real
    first = hit.argmax(axis=-1)                                         # first tap that holds it
    argmax = xp.take_along_axis(xp.broadcast_to(flat, hit.shape), first[..., None], -1)[..., 0]
    argmax = xp.where(hit.any(axis=-1), argmax, -1)
    return y, argmax.astype(xp.int64)


def max_pool2d_backward(gy, argmax, x_shape):
    """gx[..., i, j] = sum of gy[..., o, q] over the outputs whose argmax is i W + j."""
    xp = _cuda.get_array_module(gy)
    h, w = x_shape[-2:]
    planes_gy = gy.reshape(-1, gy.shape[-2] * gy.shape[-1])
    planes_ix = argmax.reshape(planes_gy.shape)
    gx = xp.zeros((planes_gy.shape[0], h * w), dtype=gy.dtype)
    for plane in range(planes_gy.shape[0]):
        chosen = planes_ix[plane] >= 0
        xp.add.at(gx[plane], planes_ix[plane][chosen], planes_gy[plane][chosen])
    return gx.reshape(tuple(x_shape))


def _divisor(xp, h, w, k, s, p, out, count_include_pad, divisor_override, dtype):
    """D[o, q]: the window's size along each axis, multiplied (see the module docstring)."""
    if divisor_override is not None:
        return xp.asarray(divisor_override, dtype=dtype)
    sizes = []
    for n, kk, ss, pp, no in zip((h, w), k, s, p, out):
        start = xp.arange(no) * ss - pp
        end = xp.minimum(start + kk, n + pp)
        if not count_include_pad:
            start, end = xp.maximum(start, 0), xp.minimum(end, n)
        sizes.append(end - start)
    return (sizes[0][:, None] * sizes[1][None, :]).astype(dtype)


def _avg_geometry(shape, kernel_size, stride, padding, ceil_mode):
    k = _pair(kernel_size)
    s, p = (k if stride is None else _pair(stride)), _pair(padding)
    h, w = shape[-2:]
    out = tuple(_out_size(n, k[i], s[i], p[i], 1, ceil_mode) for i, n in enumerate((h, w)))
    return k, s, p, out


def avg_pool2d_forward(x, kernel_size, stride=None, padding=0, ceil_mode=False,
                       count_include_pad=True, divisor_override=None):
    """y[..., o, q] = (1 / D[o, q]) sum over the window of the zero-padded input."""
    xp = _cuda.get_array_module(x)
    k, s, p, out = _avg_geometry(x.shape, kernel_size, stride, padding, ceil_mode)
    windows = _windows(xp, x, k, s, p, (1, 1), out, 0)
    div = _divisor(xp, *x.shape[-2:], k, s, p, out, count_include_pad, divisor_override,
                   x.dtype)
    return windows.sum(axis=(-2, -1)) / div


def avg_pool2d_backward(gy, x_shape, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True, divisor_override=None):
    """gx = the adjoint: every pixel of window (o, q) receives gy[..., o, q] / D[o, q]."""
    xp = _cuda.get_array_module(gy)
    k, s, p, out = _avg_geometry(x_shape, kernel_size, stride, padding, ceil_mode)
    h, w = x_shape[-2:]
    g = gy / _divisor(xp, h, w, k, s, p, out, count_include_pad, divisor_override, gy.dtype)
    hp = max(p[0] + h, (out[0] - 1) * s[0] + k[0])
    wp = max(p[1] + w, (out[1] - 1) * s[1] + k[1])
    gxpad = xp.zeros(tuple(x_shape[:-2]) + (hp, wp), dtype=gy.dtype)
    for a in range(k[0]):
        for b in range(k[1]):
            gxpad[..., a : a + s[0] * (out[0] - 1) + 1 : s[0],
                  b : b + s[1] * (out[1] - 1) + 1 : s[1]] += g
    return gxpad[..., p[0] : p[0] + h, p[1] : p[1] + w]
