"""Max and average pooling over the last two axes (NCHW), with PyTorch's conventions.

Window geometry along one axis of length ``n`` (kernel ``k``, stride ``s``, padding ``p``,
dilation ``d``): output position ``o`` looks at input positions

    o*s - p + t*d,    t = 0, ..., k-1

and the number of outputs is

    n_out = floor((n + 2p - d(k-1) - 1) / s) + 1          (ceil instead of floor if ceil_mode)

where, in ceil mode, a last window that would start inside the right padding is dropped
(PyTorch's rule: ``(n_out - 1) s >= n + p`` removes it). Padding never exceeds half the kernel
(``p <= k // 2``), so every window overlaps the input or at least its left/top padding.

Both pools are computed as a loop over the ``kh * kw`` window offsets, each a strided slice of the
padded input (a view: ``x_pad[..., t*d : t*d + s*(n_out-1) + 1 : s]``) that holds, for every
output position at once, the input pixel at that offset. Reductions over the window then become
``kh * kw`` elementwise operations on whole arrays, with no copy of the window tensor.
"""
from __future__ import annotations

import numpy as np

from . import _cuda, threads
from . import reference

IntPair = int | tuple[int, int]


def _pair(v: IntPair, name: str) -> tuple[int, int]:
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    t = tuple(int(a) for a in v)
    if len(t) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}")
    return t  # type: ignore[return-value]


def _out_size(n: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """PyTorch's ``pooling_output_shape``: see the module docstring."""
    num = n + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)
    out = num // s + 1  # Python's // rounds toward -inf, as PyTorch's div_rtn
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


def _geometry(shape, kernel_size, stride, padding, dilation, ceil_mode, op: str):
    """Validate the pooling arguments and return ``(k, s, p, d, out_hw)`` as pairs."""
    if len(shape) < 2:
        raise ValueError(f"{op} needs an array of at least 2 dimensions (..., H, W), got {shape}")
    k = _pair(kernel_size, "kernel_size")
    s = k if stride is None else _pair(stride, "stride")
    p = _pair(padding, "padding")
    d = _pair(dilation, "dilation")
    if min(k) < 1 or min(s) < 1 or min(d) < 1:
        raise ValueError(
            f"{op}: kernel_size, stride and dilation must be positive, got kernel_size={k}, "
            f"stride={s}, dilation={d}"
        )
    if min(p) < 0 or p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ValueError(
            f"{op}: padding should be at most half of the kernel size, got padding={p} for "
            f"kernel_size={k}"
        )
    h, w = shape[-2:]
    out = (_out_size(h, k[0], s[0], p[0], d[0], ceil_mode),
           _out_size(w, k[1], s[1], p[1], d[1], ceil_mode))
    if min(out) < 1:
        eff = (d[0] * (k[0] - 1) + 1, d[1] * (k[1] - 1) + 1)
        raise ValueError(
            f"{op}: kernel {k} (dilation {d}, effective size {eff}) is larger than the padded "
            f"input {(h + 2 * p[0], w + 2 * p[1])} for input shape {tuple(shape)}; "
            f"the output size would be {out}"
        )
    return k, s, p, d, out


def _padded_extent(n: int, k: int, s: int, p: int, d: int, n_out: int) -> int:
    """Length of the padded axis that holds the input at offset ``p`` and every window, including
    a ceil-mode window hanging off the end (which may reach past ``n + 2p``)."""
    return max(p + n, (n_out - 1) * s + d * (k - 1) + 1)


def _real_positions(n: int, k: int, s: int, p: int, d: int, n_out: int) -> np.ndarray:
    """``(k, n_out)`` booleans: is window offset ``t`` of output ``o`` a real (unpadded) pixel?"""
    pos = np.arange(n_out)[None, :] * s - p + np.arange(k)[:, None] * d
    return (pos >= 0) & (pos < n)


def _window_slice(t: int, s: int, d: int, n_out: int) -> slice:
    """Strided slice picking, for every output position, window offset ``t`` along one axis."""
    return slice(t * d, t * d + (n_out - 1) * s + 1, s)


# --------------------------------------------------------------------------------------------
# Max pooling
# --------------------------------------------------------------------------------------------


def max_pool2d_forward(x, kernel_size: IntPair, stride: IntPair | None = None,
                       padding: IntPair = 0, dilation: IntPair = 1, ceil_mode: bool = False):
    """Max pooling: ``y[..., o, q] = max_{a, b} x_pad[..., o*s_h + a*d_h, q*s_w + b*d_w]``.

    Returns ``(y, argmax)``. ``argmax`` (int64, the shape of ``y``) is the flat index
    ``i * W + j`` of the chosen pixel within its own ``(H, W)`` input plane, as PyTorch's
    ``return_indices=True``. Padding counts as ``-inf`` and is never chosen.

    Ties: the *first* maximum in window order (row-major over the window offsets ``(a, b)``)
    wins, so the gradient goes to exactly one pixel. A NaN in a window propagates to the output,
    with the index of the window's first NaN. A window lying entirely in the padding (possible
    only with dilation) gives ``-inf`` with index ``-1``, which receives no gradient.
    """
    if reference.enabled():
        return reference.pool.max_pool2d_forward(
            x, kernel_size, stride, padding, dilation, ceil_mode)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw), (oh, ow) = _geometry(
        tuple(x.shape), kernel_size, stride, padding, dilation, ceil_mode, "max_pool2d")
    if _cuda.is_cupy_array(x):
        return _max_pool2d_forward_cuda(x, (kh, kw), (sh, sw), (ph, pw), (dh, dw), (oh, ow))
    h, w = x.shape[-2:]
    planes = x.reshape(-1, h, w)
    y = np.empty((planes.shape[0], oh, ow), dtype=x.dtype)
    argmax = np.empty(y.shape, dtype=np.int64)

    def slice_of_planes(lo: int, hi: int) -> None:
        _max_pool_planes(planes[lo:hi], (kh, kw), (sh, sw), (ph, pw), (dh, dw), y[lo:hi],
                         argmax[lo:hi])

    # The planes are independent: the threads of kernels.threads take a share each.
    threads.parallel_for(planes.shape[0], slice_of_planes, x.nbytes + argmax.nbytes)
    return y.reshape(x.shape[:-2] + (oh, ow)), argmax.reshape(x.shape[:-2] + (oh, ow))


def _max_pool_planes(x, k, s, p, d, y, argmax) -> None:
    """:func:`max_pool2d_forward` of the planes ``x`` (n, H, W) into ``y`` and ``argmax``
    (n, oh, ow), on the calling thread."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw), (oh, ow) = k, s, p, d, y.shape[-2:]
    h, w = x.shape[-2:]
    hp = _padded_extent(h, kh, sh, ph, dh, oh)
    wp = _padded_extent(w, kw, sw, pw, dw, ow)
    if ph == pw == 0 and hp <= h and wp <= w:
        xpad = x                          # every window lies inside the input: no copy needed
    else:
        xpad = np.full(x.shape[:-2] + (hp, wp), -np.inf, dtype=x.dtype)
        xpad[..., ph:ph + h, pw:pw + w] = x

    def window(a: int, b: int):
        return xpad[..., _window_slice(a, sh, dh, oh), _window_slice(b, sw, dw, ow)]

    # Pass 1: the maximum, as a chain of elementwise maxima (np.maximum propagates NaN).
    np.copyto(y, window(0, 0))
    for a in range(kh):
        for b in range(kw):
            if a or b:
                np.maximum(y, window(a, b), out=y)

    # Pass 2: which window offset t = a * kw + b attains it. Scanning the offsets backwards and
    # overwriting leaves the *first* one in window order. Offsets that fall into the padding are
    # excluded, so that a window of real -inf pixels still points at a real pixel.
    row_ok = _real_positions(h, kh, sh, ph, dh, oh)             # (kh, oh)
    col_ok = _real_positions(w, kw, sw, pw, dw, ow)             # (kw, ow)
    nan = np.isnan(y).any()
    which = np.full(y.shape, -1, dtype=np.int16 if kh * kw < 2**15 else np.int32)
    for t in reversed(range(kh * kw)):
        a, b = divmod(t, kw)
        v = window(a, b)
        hit = v == y
        if nan:
            hit |= np.isnan(v)                                     # a NaN window: its first NaN
        valid = row_ok[a][:, None] & col_ok[b][None, :]
        if not valid.all():
            hit &= valid
        # which = t where hit: as arithmetic, since a masked copy branches on every element and
        # a max's position is as unpredictable as a coin toss.
        which += (which.dtype.type(t) - which) * hit

    # Offset (a, b) of output (o, q) is input pixel (o*s_h - p_h + a*d_h, q*s_w - p_w + b*d_w):
    # flat index = corner(o, q) + step[a * kw + b].
    corner = ((np.arange(oh, dtype=np.int64) * sh - ph)[:, None] * w
              + (np.arange(ow, dtype=np.int64) * sw - pw)[None, :])
    step = (np.arange(kh, dtype=np.int64)[:, None] * (dh * w)
            + np.arange(kw, dtype=np.int64)[None, :] * dw).ravel()
    np.add(corner, np.take(step, which), out=argmax)
    empty = which < 0
    if empty.any():
        argmax[empty] = -1


def max_pool2d_backward(gy, argmax, x_shape: tuple[int, ...]):
    """Gradient of max pooling: each output's gradient goes to the pixel it took its value from,

        gx[..., i, j] = sum_{(o, q) : argmax[..., o, q] = i*W + j} gy[..., o, q]

    a scatter-add (overlapping windows may pick the same pixel). It is one unbuffered add
    ``np.add.at`` over global pixel indices ``plane * H*W + argmax`` of a flat buffer, which
    NumPy (>= 1.25) runs as a tight loop for 1-D indices. Entries with ``argmax = -1`` are
    skipped.
    """
    if reference.enabled():
        return reference.pool.max_pool2d_backward(gy, argmax, x_shape)
    x_shape = tuple(int(n) for n in x_shape)
    if gy.shape != argmax.shape:
        raise ValueError(
            f"max_pool2d_backward: gy of shape {tuple(gy.shape)} and argmax of shape "
            f"{tuple(argmax.shape)} must match"
        )
    if len(x_shape) != gy.ndim or x_shape[:-2] != tuple(gy.shape[:-2]):
        raise ValueError(
            f"max_pool2d_backward: x_shape {x_shape} does not match gy of shape {tuple(gy.shape)} "
            "in its leading (batch, channel) axes"
        )
    if _cuda.is_cupy_array(gy):
        return _max_pool2d_backward_cuda(gy, argmax, x_shape)
    h, w = x_shape[-2:]
    planes = int(np.prod(x_shape[:-2], dtype=np.int64))
    idx = argmax.reshape(planes, -1)
    g = gy.reshape(planes, -1)
    glob = idx + (np.arange(planes, dtype=np.int64) * (h * w))[:, None]
    keep = idx >= 0
    if keep.all():
        glob, g = glob.ravel(), g.ravel()
    else:
        glob, g = glob[keep], g[keep]
    gx = np.zeros(planes * h * w, dtype=gy.dtype)
    np.add.at(gx, glob, g)
    return gx.reshape(x_shape)


# --------------------------------------------------------------------------------------------
# Average pooling
# --------------------------------------------------------------------------------------------


def _avg_divisor(h, w, k, s, p, out, ceil_mode, count_include_pad, divisor_override, dtype):
    """The ``(oh, ow)`` divisor of every window, as PyTorch computes it.

    A window spans ``[o*s - p, o*s - p + k)`` clipped to ``n + p`` on the right (a ceil-mode
    window's overhang beyond the padding is never counted). ``count_include_pad`` divides by that
    span including the zero padding; otherwise only by its real pixels. The divisor is separable:
    rows times columns.
    """
    if divisor_override is not None:
        return np.asarray(divisor_override, dtype=dtype)

    def counts(n, k, s, p, n_out):
        start = np.arange(n_out, dtype=np.int64) * s - p
        end = np.minimum(start + k, n + p)
        if count_include_pad:
            return end - start
        return np.minimum(end, n) - np.maximum(start, 0)

    ch = counts(h, k[0], s[0], p[0], out[0])
    cw = counts(w, k[1], s[1], p[1], out[1])
    return (ch[:, None] * cw[None, :]).astype(dtype)


def _avg_args(shape, kernel_size, stride, padding, ceil_mode, divisor_override, op):
    k, s, p, _, out = _geometry(shape, kernel_size, stride, padding, 1, ceil_mode, op)
    if divisor_override is not None and int(divisor_override) == 0:
        raise ValueError(f"{op}: divisor_override must be non-zero")
    return k, s, p, out


def avg_pool2d_forward(x, kernel_size: IntPair, stride: IntPair | None = None,
                       padding: IntPair = 0, ceil_mode: bool = False,
                       count_include_pad: bool = True, divisor_override: int | None = None):
    """Average pooling: ``y[..., o, q] = (1 / D[o, q]) sum_{a, b} x_pad[..., o*s_h + a, q*s_w + b]``

    with zero padding and the divisor ``D`` of PyTorch (see ``_avg_divisor``): the window size
    including padding, or only its real pixels if ``count_include_pad=False``, or
    ``divisor_override``.
    """
    if reference.enabled():
        return reference.pool.avg_pool2d_forward(
            x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
    k, s, p, out = _avg_args(tuple(x.shape), kernel_size, stride, padding, ceil_mode,
                             divisor_override, "avg_pool2d")
    h, w = x.shape[-2:]
    if _cuda.is_cupy_array(x):
        return _avg_pool2d_cuda(x, None, x.shape, k, s, p, out, count_include_pad,
                                divisor_override)
    div = _avg_divisor(h, w, k, s, p, out, ceil_mode, count_include_pad, divisor_override,
                       x.dtype)
    hp = _padded_extent(h, k[0], s[0], p[0], 1, out[0])
    wp = _padded_extent(w, k[1], s[1], p[1], 1, out[1])
    xpad = np.zeros(x.shape[:-2] + (hp, wp), dtype=x.dtype)
    xpad[..., p[0]:p[0] + h, p[1]:p[1] + w] = x
    acc = np.zeros(x.shape[:-2] + out, dtype=x.dtype)
    for a in range(k[0]):
        for b in range(k[1]):
            acc += xpad[..., _window_slice(a, s[0], 1, out[0]), _window_slice(b, s[1], 1, out[1])]
    acc /= div
    return acc


def avg_pool2d_backward(gy, x_shape: tuple[int, ...], kernel_size: IntPair,
                        stride: IntPair | None = None, padding: IntPair = 0,
                        ceil_mode: bool = False, count_include_pad: bool = True,
                        divisor_override: int | None = None):
    """Gradient of average pooling, the adjoint of the forward pass:

        gx_pad[..., o*s_h + a, q*s_w + b] += gy[..., o, q] / D[o, q]    for every offset (a, b)

    then the padding is cropped away. Each offset is one strided slice-add of the whole output.
    """
    if reference.enabled():
        return reference.pool.avg_pool2d_backward(
            gy, x_shape, kernel_size, stride, padding, ceil_mode, count_include_pad,
            divisor_override)
    x_shape = tuple(int(n) for n in x_shape)
    k, s, p, out = _avg_args(x_shape, kernel_size, stride, padding, ceil_mode, divisor_override,
                             "avg_pool2d_backward")
    if tuple(gy.shape) != x_shape[:-2] + out:
        raise ValueError(
            f"avg_pool2d_backward: gy has shape {tuple(gy.shape)}, but pooling an input of shape "
            f"{x_shape} gives {x_shape[:-2] + out}"
        )
    if _cuda.is_cupy_array(gy):
        return _avg_pool2d_cuda(None, gy, x_shape, k, s, p, out, count_include_pad,
                                divisor_override)
    h, w = x_shape[-2:]
    div = _avg_divisor(h, w, k, s, p, out, ceil_mode, count_include_pad, divisor_override,
                       gy.dtype)
    g = gy / div
    hp = _padded_extent(h, k[0], s[0], p[0], 1, out[0])
    wp = _padded_extent(w, k[1], s[1], p[1], 1, out[1])
    gpad = np.zeros(x_shape[:-2] + (hp, wp), dtype=gy.dtype)
    for a in range(k[0]):
        for b in range(k[1]):
            gpad[..., _window_slice(a, s[0], 1, out[0]), _window_slice(b, s[1], 1, out[1])] += g
    return np.ascontiguousarray(gpad[..., p[0]:p[0] + h, p[1]:p[1] + w])


# --------------------------------------------------------------------------------------------
# CUDA path (kernels/cuda/pool.cu)
# --------------------------------------------------------------------------------------------


def _planes(shape) -> int:
    return int(np.prod(shape[:-2], dtype=np.int64))


def _max_pool2d_forward_cuda(x, k, s, p, d, out):
    import cupy

    x = cupy.ascontiguousarray(x)
    h, w = x.shape[-2:]
    y = cupy.empty(x.shape[:-2] + out, dtype=x.dtype)
    argmax = cupy.empty(y.shape, dtype=cupy.int64)
    kernel = _cuda.function("pool.cu", f"max_pool2d_forward_{_cuda.dtype_suffix(x.dtype)}")
    i64 = np.int64
    args = (x, y, argmax, i64(_planes(x.shape)), i64(h), i64(w), i64(out[0]), i64(out[1]),
            i64(k[0]), i64(k[1]), i64(s[0]), i64(s[1]), i64(p[0]), i64(p[1]), i64(d[0]),
            i64(d[1]))
    _cuda.launch_1d(kernel, y.size, args)
    return y, argmax


def _max_pool2d_backward_cuda(gy, argmax, x_shape):
    # Without the window geometry the pixels that chose a given pixel cannot be enumerated, so
    # this is the one scatter with atomics (float addition order, hence the last bits of a pixel
    # picked by several overlapping windows, is not deterministic).
    import cupy

    gy = cupy.ascontiguousarray(gy)
    argmax = cupy.ascontiguousarray(argmax, dtype=cupy.int64)
    h, w = x_shape[-2:]
    gx = cupy.zeros(x_shape, dtype=gy.dtype)
    kernel = _cuda.function("pool.cu", f"max_pool2d_backward_{_cuda.dtype_suffix(gy.dtype)}")
    out_hw = gy.shape[-2] * gy.shape[-1]
    args = (gy, argmax, gx, np.int64(gy.size), np.int64(out_hw), np.int64(h * w))
    _cuda.launch_1d(kernel, gy.size, args)
    return gx


def _avg_pool2d_cuda(x, gy, x_shape, k, s, p, out, count_include_pad, divisor_override):
    """Forward (``x`` given) or backward (``gy`` given) average pooling on the GPU."""
    import cupy

    h, w = x_shape[-2:]
    i64 = np.int64
    geometry = (i64(_planes(x_shape)), i64(h), i64(w), i64(out[0]), i64(out[1]), i64(k[0]),
                i64(k[1]), i64(s[0]), i64(s[1]), i64(p[0]), i64(p[1]),
                np.int32(bool(count_include_pad)),
                i64(0 if divisor_override is None else int(divisor_override)))
    if x is not None:
        x = cupy.ascontiguousarray(x)
        y = cupy.empty(tuple(x_shape[:-2]) + out, dtype=x.dtype)
        kernel = _cuda.function("pool.cu", f"avg_pool2d_forward_{_cuda.dtype_suffix(x.dtype)}")
        _cuda.launch_1d(kernel, y.size, (x, y) + geometry)
        return y
    gy = cupy.ascontiguousarray(gy)
    gx = cupy.empty(x_shape, dtype=gy.dtype)
    kernel = _cuda.function("pool.cu", f"avg_pool2d_backward_{_cuda.dtype_suffix(gy.dtype)}")
    _cuda.launch_1d(kernel, gx.size, (gy, gx) + geometry)
    return gx
