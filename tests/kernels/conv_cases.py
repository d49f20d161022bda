"""Shared by the convolution tests: naive float64 references (one output or input pixel at a
time), hypothesis strategies for valid convolutions, and small helpers."""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st

from scratchgen.kernels.conv import cpu_forward

# ---------------------------------------------------------------------------------------------
# naive references: one output pixel (or one input pixel) at a time, in float64
# ---------------------------------------------------------------------------------------------


def _pad(x, p):
    return np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))


def _window_index(p, q, kh, kw, s, d):
    rows = s[0] * p + d[0] * np.arange(kh)
    cols = s[1] * q + d[1] * np.arange(kw)
    return np.ix_(rows, cols)


def ref_conv2d(x, w, b, s, p, d):
    x, w = x.astype(np.float64), w.astype(np.float64)
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    ho = (h + 2 * p[0] - d[0] * (kh - 1) - 1) // s[0] + 1
    wo = (wd + 2 * p[1] - d[1] * (kw - 1) - 1) // s[1] + 1
    xp = _pad(x, p)
    y = np.zeros((n, o, ho, wo))
    for pi in range(ho):
        for qi in range(wo):
            r, cc = _window_index(pi, qi, kh, kw, s, d)
            y[:, :, pi, qi] = np.einsum("ncij,ocij->no", xp[:, :, r, cc], w)
    if b is not None:
        y += b.reshape(1, -1, 1, 1)
    return y


def ref_conv2d_backward_input(gy, w, x_shape, s, p, d):
    gy, w = gy.astype(np.float64), w.astype(np.float64)
    n, c, h, wd = x_shape
    _, _, kh, kw = w.shape
    gxp = np.zeros((n, c, h + 2 * p[0], wd + 2 * p[1]))
    for pi in range(gy.shape[2]):
        for qi in range(gy.shape[3]):
            r, cc = _window_index(pi, qi, kh, kw, s, d)
            gxp[:, :, r, cc] += np.einsum("no,ocij->ncij", gy[:, :, pi, qi], w)
    return gxp[:, :, p[0] : p[0] + h, p[1] : p[1] + wd]


def ref_conv2d_backward_weight(gy, x, w_shape, s, p, d):
    gy, x = gy.astype(np.float64), x.astype(np.float64)
    _, _, kh, kw = w_shape
    xp = _pad(x, p)
    gw = np.zeros(w_shape)
    for pi in range(gy.shape[2]):
        for qi in range(gy.shape[3]):
            r, cc = _window_index(pi, qi, kh, kw, s, d)
            gw += np.einsum("no,ncij->ocij", gy[:, :, pi, qi], xp[:, :, r, cc])
    return gw


def ref_conv_transpose2d(x, w, b, s, p, op, d):
    """Scatter: input pixel (h, v) adds x[:, :, h, v] @ w[:, :, i, j] at (s h + d i, s v + d j)."""
    x, w = x.astype(np.float64), w.astype(np.float64)
    n, cin, h, wd = x.shape
    _, cout, kh, kw = w.shape
    full_h = (h - 1) * s[0] + d[0] * (kh - 1) + 1 + op[0]
    full_w = (wd - 1) * s[1] + d[1] * (kw - 1) + 1 + op[1]
    full = np.zeros((n, cout, full_h, full_w))
    for hi in range(h):
        for vi in range(wd):
            for i in range(kh):
                for j in range(kw):
                    full[:, :, s[0] * hi + d[0] * i, s[1] * vi + d[1] * j] += x[:, :, hi, vi] @ w[
                        :, :, i, j
                    ]
    y = full[:, :, p[0] : full_h - p[0], p[1] : full_w - p[1]]
    if b is not None:
        y = y + b.reshape(1, -1, 1, 1)
    return y


# ---------------------------------------------------------------------------------------------
# strategies
# ---------------------------------------------------------------------------------------------

pairs12 = st.tuples(st.integers(1, 2), st.integers(1, 2))
pairs13 = st.tuples(st.integers(1, 3), st.integers(1, 3))
pairs02 = st.tuples(st.integers(0, 2), st.integers(0, 2))
pairs14 = st.tuples(st.integers(1, 4), st.integers(1, 4))


@st.composite
def conv_cases(draw):
    """A valid convolution: shapes, stride (1-3), padding (0-2), dilation (1-2), kernel (1-4)."""
    n = draw(st.integers(1, 3))
    c = draw(st.integers(1, 4))
    o = draw(st.integers(1, 4))
    k = draw(pairs14)
    s = draw(pairs13)
    p = draw(pairs02)
    d = draw(pairs12)
    hw = []
    for a in range(2):
        span = d[a] * (k[a] - 1) + 1
        hw.append(draw(st.integers(max(1, span - 2 * p[a]), span - 2 * p[a] + 7)))
    seed = draw(st.integers(0, 2**31 - 1))
    return (n, c, hw[0], hw[1]), (o, c, k[0], k[1]), s, p, d, seed


@st.composite
def conv_transpose_cases(draw):
    n = draw(st.integers(1, 3))
    cin = draw(st.integers(1, 4))
    cout = draw(st.integers(1, 4))
    k = draw(pairs14)
    s = draw(pairs13)
    d = draw(pairs12)
    op = tuple(draw(st.integers(0, max(s[a], d[a]) - 1)) for a in range(2))
    hw = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    # padding may not eat the whole output
    p = []
    for a in range(2):
        tight = (hw[a] - 1) * s[a] + d[a] * (k[a] - 1) + 1 + op[a]
        p.append(draw(st.integers(0, min(2, (tight - 1) // 2))))
    seed = draw(st.integers(0, 2**31 - 1))
    return (n, cin, hw[0], hw[1]), (cin, cout, k[0], k[1]), s, tuple(p), op, d, seed


def rand(rng, shape, dtype=np.float64):
    return rng.standard_normal(shape).astype(dtype)


def close(a, ref, rtol):
    scale = max(1.0, float(np.abs(ref).max(initial=0.0)))
    np.testing.assert_allclose(a, ref, rtol=rtol, atol=rtol * scale)


SETTINGS = settings(max_examples=150, deadline=None)



@contextmanager
def layout(planes: bool):
    """im2col and col2im on NCHW planes or in NHWC, whatever the channel count (the shapes
    drawn here have few channels, which would always take the planes)."""
    with pytest.MonkeyPatch.context() as m:
        m.setattr(cpu_forward, "_PLANES_MAX_CHANNELS", np.inf if planes else 0)
        yield
