"""Convolution kernels against naive float64 references, adjoint identities and bad arguments."""
from __future__ import annotations

import re
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchgen.kernels import conv as K

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


def _rand(rng, shape, dtype=np.float64):
    return rng.standard_normal(shape).astype(dtype)


def _close(a, ref, rtol):
    scale = max(1.0, float(np.abs(ref).max(initial=0.0)))
    np.testing.assert_allclose(a, ref, rtol=rtol, atol=rtol * scale)


SETTINGS = settings(max_examples=150, deadline=None)


@contextmanager
def _layout(planes: bool):
    """im2col and col2im on NCHW planes or in NHWC, whatever the channel count (the shapes
    drawn here have few channels, which would always take the planes)."""
    with pytest.MonkeyPatch.context() as m:
        m.setattr(K, "_PLANES_MAX_CHANNELS", np.inf if planes else 0)
        yield


# ---------------------------------------------------------------------------------------------
# convolution against the references
# ---------------------------------------------------------------------------------------------


@SETTINGS
@given(conv_cases(), st.booleans(), st.booleans())
def test_conv2d_forward_matches_reference(case, with_bias, planes):
    x_shape, w_shape, s, p, d, seed = case
    rng = np.random.default_rng(seed)
    x, w = _rand(rng, x_shape), _rand(rng, w_shape)
    b = _rand(rng, (w_shape[0],)) if with_bias else None
    ref = ref_conv2d(x, w, b, s, p, d)
    b32 = None if b is None else b.astype(np.float32)
    with _layout(planes):
        y = K.conv2d_forward(x, w, b, stride=s, padding=p, dilation=d)
        y32 = K.conv2d_forward(x.astype(np.float32), w.astype(np.float32), b32, s, p, d)
    assert y.dtype == np.float64 and y.shape == ref.shape and y.flags.c_contiguous
    _close(y, ref, 1e-12)
    assert y32.dtype == np.float32
    _close(y32, ref, 1e-4)


@SETTINGS
@given(conv_cases(), st.booleans())
def test_conv2d_backward_input_matches_reference(case, planes):
    x_shape, w_shape, s, p, d, seed = case
    rng = np.random.default_rng(seed)
    w = _rand(rng, w_shape)
    ho = K.conv_output_size(x_shape[2], w_shape[2], s[0], p[0], d[0])
    wo = K.conv_output_size(x_shape[3], w_shape[3], s[1], p[1], d[1])
    gy = _rand(rng, (x_shape[0], w_shape[0], ho, wo))
    ref = ref_conv2d_backward_input(gy, w, x_shape, s, p, d)
    with _layout(planes):
        gx = K.conv2d_backward_input(gy, w, x_shape, stride=s, padding=p, dilation=d)
        gx32 = K.conv2d_backward_input(gy.astype(np.float32), w.astype(np.float32), x_shape,
                                       s, p, d)
    assert gx.shape == x_shape and gx.dtype == np.float64 and gx.flags.c_contiguous
    _close(gx, ref, 1e-12)
    assert gx32.dtype == np.float32
    _close(gx32, ref, 1e-4)


@SETTINGS
@given(conv_cases(), st.booleans())
def test_conv2d_backward_weight_matches_reference(case, planes):
    x_shape, w_shape, s, p, d, seed = case
    rng = np.random.default_rng(seed)
    x = _rand(rng, x_shape)
    ho = K.conv_output_size(x_shape[2], w_shape[2], s[0], p[0], d[0])
    wo = K.conv_output_size(x_shape[3], w_shape[3], s[1], p[1], d[1])
    gy = _rand(rng, (x_shape[0], w_shape[0], ho, wo))
    ref = ref_conv2d_backward_weight(gy, x, w_shape, s, p, d)
    with _layout(planes):
        gw = K.conv2d_backward_weight(gy, x, w_shape, stride=s, padding=p, dilation=d)
        gw32 = K.conv2d_backward_weight(gy.astype(np.float32), x.astype(np.float32), w_shape,
                                        s, p, d)
    assert gw.shape == w_shape and gw.dtype == np.float64 and gw.flags.c_contiguous
    _close(gw, ref, 1e-12)
    assert gw32.dtype == np.float32
    _close(gw32, ref, 1e-4)


@SETTINGS
@given(conv_cases(), st.booleans())
def test_conv2d_adjoint_identities(case, planes):
    """<conv(x, w), gy> = <x, backward_input(gy, w)> = <w, backward_weight(gy, x)>."""
    x_shape, w_shape, s, p, d, seed = case
    rng = np.random.default_rng(seed)
    x, w = _rand(rng, x_shape), _rand(rng, w_shape)
    y = K.conv2d_forward(x, w, None, s, p, d)
    gy = _rand(rng, y.shape)
    lhs = np.vdot(y, gy)
    with _layout(planes):
        gx = K.conv2d_backward_input(gy, w, x_shape, s, p, d)
    gw = K.conv2d_backward_weight(gy, x, w_shape, s, p, d)
    scale = np.abs(y).sum() * np.abs(gy).max() + 1.0
    assert abs(lhs - np.vdot(x, gx)) <= 1e-12 * scale
    assert abs(lhs - np.vdot(w, gw)) <= 1e-12 * scale


def test_bias_gradient():
    rng = np.random.default_rng(0)
    gy = _rand(rng, (2, 3, 4, 5))
    np.testing.assert_allclose(K.conv2d_backward_bias(gy), gy.sum(axis=(0, 2, 3)))


# ---------------------------------------------------------------------------------------------
# transposed convolution
# ---------------------------------------------------------------------------------------------


@SETTINGS
@given(conv_transpose_cases(), st.booleans(), st.booleans())
def test_conv_transpose2d_matches_scatter_reference(case, with_bias, planes):
    x_shape, w_shape, s, p, op, d, seed = case
    rng = np.random.default_rng(seed)
    x, w = _rand(rng, x_shape), _rand(rng, w_shape)
    b = _rand(rng, (w_shape[1],)) if with_bias else None
    ref = ref_conv_transpose2d(x, w, b, s, p, op, d)
    with _layout(planes):
        y = K.conv_transpose2d_forward(x, w, b, stride=s, padding=p, output_padding=op,
                                       dilation=d)
    expected_hw = tuple(
        K.conv_transpose_output_size(x_shape[2 + a], w_shape[2 + a], s[a], p[a], op[a], d[a])
        for a in range(2)
    )
    assert y.shape == ref.shape == (x_shape[0], w_shape[1], *expected_hw)
    _close(y, ref, 1e-12)
    b32 = None if b is None else b.astype(np.float32)
    with _layout(planes):
        y32 = K.conv_transpose2d_forward(
            x.astype(np.float32), w.astype(np.float32), b32, s, p, op, d
        )
    assert y32.dtype == np.float32
    _close(y32, ref, 1e-4)


@SETTINGS
@given(conv_transpose_cases())
def test_conv_transpose2d_backward_is_adjoint(case):
    """<convT(x, w), gy> = <x, backward_input(gy, w)> = <w, backward_weight(gy, x)>."""
    x_shape, w_shape, s, p, op, d, seed = case
    rng = np.random.default_rng(seed)
    x, w = _rand(rng, x_shape), _rand(rng, w_shape)
    y = K.conv_transpose2d_forward(x, w, None, s, p, op, d)
    gy = _rand(rng, y.shape)
    gx = K.conv_transpose2d_backward_input(gy, w, s, p, d, output_padding=op)
    gw = K.conv_transpose2d_backward_weight(gy, x, w_shape, s, p, d)
    assert gx.shape == x_shape and gw.shape == w_shape
    lhs = np.vdot(y, gy)
    scale = np.abs(y).sum() * np.abs(gy).max() + 1.0
    assert abs(lhs - np.vdot(x, gx)) <= 1e-12 * scale
    assert abs(lhs - np.vdot(w, gw)) <= 1e-12 * scale
    if x.size <= 48:  # the gradient by brute force: d<y, gy>/dx, one basis vector at a time
        gx_ref = np.zeros(x_shape)
        for index in np.ndindex(*x_shape):
            e = np.zeros(x_shape)
            e[index] = 1.0
            gx_ref[index] = np.vdot(ref_conv_transpose2d(e, w, None, s, p, op, d), gy)
        _close(gx, gx_ref, 1e-12)


# ---------------------------------------------------------------------------------------------
# the paths for big arrays (batch chunks, blocked transposes), layouts, sizes
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "x_shape,w_shape,s,p,d",
    [
        ((5, 3, 9, 7), (4, 3, 3, 2), (2, 1), (1, 0), (1, 2)),
        ((3, 8, 9, 7), (4, 8, 3, 2), (2, 1), (1, 0), (1, 2)),
        ((4, 6, 8, 8), (5, 6, 4, 4), (2, 2), (1, 1), (1, 1)),
        ((3, 2, 10, 6), (3, 2, 1, 1), (3, 2), (0, 1), (1, 1)),
        ((3, 4, 6, 5), (2, 4, 3, 3), (1, 1), (1, 1), (1, 1)),
    ],
)
def test_chunked_and_blocked_paths(monkeypatch, dtype, x_shape, w_shape, s, p, d):
    """Splitting the batch into chunks and transposes into row blocks changes no result (the
    input gradients of the first two cases go by planes and by col2im)."""
    monkeypatch.setattr(K, "_SUBPIXEL_ROWS", 1)  # the stride-phase path for (4, 4) / (2, 2)
    monkeypatch.setattr(K, "_SUBPIXEL_SPARE", np.inf)
    rng = np.random.default_rng(1)
    x, w = _rand(rng, x_shape, dtype), _rand(rng, w_shape, dtype)
    b = _rand(rng, (w_shape[0],), dtype)
    y0 = K.conv2d_forward(x, w, b, s, p, d)
    gy = _rand(rng, y0.shape, dtype)
    gx0 = K.conv2d_backward_input(gy, w, x_shape, s, p, d)
    gw0 = K.conv2d_backward_weight(gy, x, w_shape, s, p, d)
    bt = _rand(rng, (w_shape[1],), dtype)
    yt0 = K.conv_transpose2d_forward(y0, w, bt, s, p, 0, d)
    monkeypatch.setattr(K, "_TRANSPOSE_BLOCK_BYTES", 64)
    monkeypatch.setattr(K, "_COLS_BUDGET_BYTES", 1)  # one image per chunk
    assert len(K._chunks(K._geometry("t", x_shape, w_shape, s, p, d), x.itemsize)[0]) > 1
    tol = 1e-5 if dtype == np.float32 else 1e-12
    _close(K.conv2d_forward(x, w, b, s, p, d), y0, tol)
    _close(K.conv2d_backward_input(gy, w, x_shape, s, p, d), gx0, tol)
    _close(K.conv2d_backward_weight(gy, x, w_shape, s, p, d), gw0, tol)
    _close(K.conv_transpose2d_forward(y0, w, bt, s, p, 0, d), yt0, tol)
    _close(ref_conv2d(x, w, b, s, p, d), y0, tol)
    _close(ref_conv_transpose2d(y0, w, bt, s, p, (0, 0), d), yt0, tol)


def test_stride_phase_path_matches_col2im(monkeypatch):
    """The stride-phase input gradient (stride dividing the kernel) against col2im and the
    reference, over every such kernel/stride pair up to 4, paddings up to the kernel, sizes
    down to a single pixel and transposed convolutions with output_padding and bias."""
    rng = np.random.default_rng(5)
    monkeypatch.setattr(K, "_SUBPIXEL_ROWS", 1)  # taken for every shape here
    monkeypatch.setattr(K, "_SUBPIXEL_SPARE", np.inf)
    cases = 0
    for kh, sh in [(2, 2), (4, 2), (3, 3), (4, 4), (4, 1), (2, 1)]:
        for kw, sw in [(2, 2), (4, 2), (3, 3), (1, 1)]:
            if sh == sw == 1:
                continue
            for ph, pw in [(0, 0), (1, 0), (kh - 1, kw - 1)]:
                for h, wd in [(kh - 2 * ph + 0, kw), (7, 5), (9, 8)]:
                    if h + 2 * ph < kh or wd + 2 * pw < kw or h < 1:
                        continue
                    x_shape, w_shape = (2, 3, h, wd), (4, 3, kh, kw)
                    g = K._geometry("t", x_shape, w_shape, (sh, sw), (ph, pw), 1)
                    assert K._subpixel(g)
                    w = _rand(rng, w_shape)
                    gy = _rand(rng, (2, 4, g.ho, g.wo))
                    got = K.conv2d_backward_input(gy, w, x_shape, (sh, sw), (ph, pw))
                    _close(got, ref_conv2d_backward_input(gy, w, x_shape, (sh, sw), (ph, pw),
                                                          (1, 1)), 1e-12)
                    for op in {(0, 0), (sh - 1, sw - 1)}:
                        bt = _rand(rng, (3,))
                        yt = K.conv_transpose2d_forward(gy, w, bt, (sh, sw), (ph, pw), op)
                        _close(yt, ref_conv_transpose2d(gy, w, bt, (sh, sw), (ph, pw), op,
                                                        (1, 1)), 1e-12)
                        with monkeypatch.context() as m:
                            m.setattr(K, "_subpixel", lambda g: False)
                            _close(K.conv_transpose2d_forward(gy, w, bt, (sh, sw), (ph, pw), op),
                                   yt, 1e-12)
                    cases += 1
    assert cases > 100


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("channels", [5, 8])  # NCHW planes, NHWC rows
def test_saved_columns_give_the_same_gradients(monkeypatch, dtype, channels):
    """The forward's im2col matrix, kept for the weight gradient, changes no result; it is
    refused for another convolution, and not kept above the size budget or for 1 x 1."""
    rng = np.random.default_rng(2)
    x, w = _rand(rng, (3, channels, 9, 8), dtype), _rand(rng, (4, channels, 3, 4), dtype)
    b = _rand(rng, (4,), dtype)
    y, cols = K.conv2d_forward_with_columns(x, w, b, (2, 1), (1, 2), (1, 2))
    l, k = y.shape[2] * y.shape[3], channels * 3 * 4
    assert cols is not None
    assert cols.matrix.shape == ((3, k, l) if channels < K._PLANES_MAX_CHANNELS else (3 * l, k))
    np.testing.assert_array_equal(y, K.conv2d_forward(x, w, b, (2, 1), (1, 2), (1, 2)))
    gy = _rand(rng, y.shape, dtype)
    gw = K.conv2d_backward_weight(gy, x, w.shape, (2, 1), (1, 2), (1, 2), columns=cols)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    _close(gw, K.conv2d_backward_weight(gy, x, w.shape, (2, 1), (1, 2), (1, 2)), tol)
    _close(gw, ref_conv2d_backward_weight(gy, x, w.shape, (2, 1), (1, 2), (1, 2)), tol)
    with pytest.raises(ValueError, match="saved columns are of another convolution"):
        K.conv2d_backward_weight(gy[:, :, :, :3], x, w.shape, (2, 2), (1, 2), (1, 2),
                                 columns=cols)
    with pytest.raises(TypeError, match="columns must be"):
        K.conv2d_backward_weight(gy, x, w.shape, (2, 1), (1, 2), (1, 2), columns=cols.matrix)
    other = np.float64 if dtype == np.float32 else np.float32
    with pytest.raises(TypeError, match="saved columns"):
        K.conv2d_backward_weight(gy.astype(other), x.astype(other), w.shape, (2, 1), (1, 2),
                                 (1, 2), columns=cols)
    assert K.conv2d_forward_with_columns(x, w[:, :, :1, :1], b)[1] is None  # 1 x 1
    monkeypatch.setattr(K, "_SAVED_COLUMNS_BYTES", 100)
    y2, none = K.conv2d_forward_with_columns(x, w, b, (2, 1), (1, 2), (1, 2))
    assert none is None
    np.testing.assert_array_equal(y2, y)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pointwise_convolution_path(dtype):
    """1 x 1, stride 1, no padding: the per-image matrix product path, against the references,
    including a non-contiguous input and a transposed convolution with a bias."""
    rng = np.random.default_rng(4)
    x = _rand(rng, (3, 7, 4, 5), dtype)[:, ::2]  # (3, 4, 4, 5), non-contiguous
    w, b = _rand(rng, (6, 4, 1, 1), dtype), _rand(rng, (6,), dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    y = K.conv2d_forward(x, w, b)
    _close(y, ref_conv2d(x, w, b, (1, 1), (0, 0), (1, 1)), tol)
    gy = _rand(rng, y.shape, dtype)
    gx, gw = K.conv2d_backward_input(gy, w, x.shape), K.conv2d_backward_weight(gy, x, w.shape)
    # adjoint identities: <gy, conv(x)> = <gx, x> = <gw, w> (conv without bias is bilinear)
    inner = float((gy * ref_conv2d(x, w, None, (1, 1), (0, 0), (1, 1))).sum())
    assert np.isclose(float((gx * x).sum()), inner, rtol=1e-4 if dtype == np.float32 else 1e-10)
    assert np.isclose(float((gw * w).sum()), inner, rtol=1e-4 if dtype == np.float32 else 1e-10)
    bt = _rand(rng, (4,), dtype)
    _close(K.conv_transpose2d_forward(gy, w, bt),
           ref_conv_transpose2d(gy, w, bt, (1, 1), (0, 0), (0, 0), (1, 1)),
           tol)


def test_non_contiguous_inputs():
    rng = np.random.default_rng(2)
    x = _rand(rng, (2, 7, 6, 3)).transpose(0, 3, 1, 2)  # (2, 3, 7, 6), not C-contiguous
    w = _rand(rng, (3, 4, 3, 2)).transpose(1, 0, 2, 3)  # (4, 3, 3, 2), a view
    y = K.conv2d_forward(x, w, None, 1, 1, 1)
    _close(y, ref_conv2d(x, w, None, (1, 1), (1, 1), (1, 1)), 1e-12)
    gy = _rand(rng, y.shape[::-1]).transpose(3, 2, 1, 0)
    _close(
        K.conv2d_backward_input(gy, w, x.shape, 1, 1, 1),
        ref_conv2d_backward_input(gy, w, x.shape, (1, 1), (1, 1), (1, 1)),
        1e-12,
    )
    _close(
        K.conv2d_backward_weight(gy, x, w.shape, 1, 1, 1),
        ref_conv2d_backward_weight(gy, x, w.shape, (1, 1), (1, 1), (1, 1)),
        1e-12,
    )


def test_output_sizes():
    assert K.conv_output_size(28, 4, 2, 1, 1) == 14
    assert K.conv_output_size(5, 3, 1, 0, 2) == 1
    assert K.conv_transpose_output_size(7, 4, 2, 1, 0, 1) == 14
    assert K.conv_transpose_output_size(7, 3, 2, 1, 1, 1) == 14
    # the transposed size inverts the convolution's size
    for h in range(1, 12):
        for k, s, p, d in [(4, 2, 1, 1), (3, 1, 1, 1), (3, 2, 0, 2), (5, 3, 2, 1)]:
            ho = K.conv_output_size(h, k, s, p, d)
            if ho >= 1:
                op = h - K.conv_transpose_output_size(ho, k, s, p, 0, d)
                assert 0 <= op < s
                assert K.conv_transpose_output_size(ho, k, s, p, op, d) == h


def test_empty_batch():
    x = np.zeros((0, 3, 5, 5), np.float32)
    w = np.ones((2, 3, 3, 3), np.float32)
    y = K.conv2d_forward(x, w, None, 1, 1)
    assert y.shape == (0, 2, 5, 5) and y.dtype == np.float32
    assert K.conv2d_backward_input(y, w, x.shape, 1, 1).shape == x.shape
    assert np.all(K.conv2d_backward_weight(y, x, w.shape, 1, 1) == 0)


# ---------------------------------------------------------------------------------------------
# bad arguments
# ---------------------------------------------------------------------------------------------


def _raises(exc, *fragments):
    pattern = ".*".join(re.escape(f) for f in fragments)
    return pytest.raises(exc, match=pattern)


def test_error_channel_mismatch_names_both_shapes():
    x, w = np.zeros((2, 3, 8, 8)), np.zeros((4, 5, 3, 3))
    with _raises(ValueError, "(2, 3, 8, 8)", "(4, 5, 3, 3)"):
        K.conv2d_forward(x, w)
    with _raises(ValueError, "(2, 3, 8, 8)", "(4, 5, 3, 3)"):
        K.conv2d_backward_weight(np.zeros((2, 4, 6, 6)), x, (4, 5, 3, 3))
    with _raises(ValueError, "(2, 3, 4, 4)", "(5, 2, 3, 3)"):
        K.conv_transpose2d_forward(np.zeros((2, 3, 4, 4)), np.zeros((5, 2, 3, 3)))


def test_error_kernel_larger_than_padded_input():
    with _raises(ValueError, "(5, 5)", "padded input (4, 4)", "(1, 1, 2, 2)"):
        K.conv2d_forward(np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 5, 5)), padding=1)
    with _raises(ValueError, "dilation (3, 1)", "(7, 3)"):
        K.conv2d_forward(np.zeros((1, 1, 6, 6)), np.zeros((1, 1, 3, 3)), dilation=(3, 1))


def test_error_bad_hyperparameters():
    x, w = np.zeros((1, 1, 5, 5)), np.zeros((1, 1, 3, 3))
    with _raises(ValueError, "stride", "(0, 0)"):
        K.conv2d_forward(x, w, stride=0)
    with _raises(ValueError, "stride", "(1, -1)"):
        K.conv2d_forward(x, w, stride=(1, -1))
    with _raises(ValueError, "padding", "(-1, -1)"):
        K.conv2d_forward(x, w, padding=-1)
    with _raises(ValueError, "dilation", "(0, 0)"):
        K.conv2d_forward(x, w, dilation=0)
    with _raises(ValueError, "stride", "(1, 2, 3)"):
        K.conv2d_forward(x, w, stride=(1, 2, 3))


def test_error_output_padding():
    x, w = np.zeros((1, 2, 3, 3)), np.zeros((2, 1, 3, 3))
    with _raises(ValueError, "output_padding (2, 2)", "stride (2, 2)", "dilation (1, 1)"):
        K.conv_transpose2d_forward(x, w, stride=2, output_padding=2)
    with _raises(ValueError, "output_padding (1, 1)", "stride (1, 1)"):
        K.conv_transpose2d_forward(x, w, stride=1, output_padding=1)
    # allowed: smaller than the dilation (PyTorch's rule)
    y = K.conv_transpose2d_forward(x, w, stride=1, output_padding=1, dilation=2)
    assert y.shape == (1, 1, 3 - 1 + 2 * 2 + 1 + 1, 3 - 1 + 2 * 2 + 1 + 1)


def test_error_wrong_ndim_and_shapes():
    with _raises(ValueError, "4-D", "(3, 8, 8)"):
        K.conv2d_forward(np.zeros((3, 8, 8)), np.zeros((4, 3, 3, 3)))
    with _raises(ValueError, "weight", "4-D", "(4, 3, 3)"):
        K.conv2d_forward(np.zeros((1, 3, 8, 8)), np.zeros((4, 3, 3)))
    with _raises(ValueError, "gy", "(1, 4, 5, 5)", "(1, 4, 6, 6)"):
        K.conv2d_backward_input(np.zeros((1, 4, 5, 5)), np.zeros((4, 3, 3, 3)), (1, 3, 8, 8))
    with _raises(ValueError, "bias", "(3,)", "(4, 3, 3, 3)"):
        K.conv2d_forward(np.zeros((1, 3, 8, 8)), np.zeros((4, 3, 3, 3)), np.zeros(3))
    with _raises(ValueError, "x_shape"):
        K.conv2d_backward_input(np.zeros((1, 4, 6, 6)), np.zeros((4, 3, 3, 3)), (1, 3, 8))


def test_error_dtypes():
    with _raises(TypeError, "float32", "float64"):
        K.conv2d_forward(np.zeros((1, 1, 3, 3), np.float32), np.zeros((1, 1, 3, 3)))
    with _raises(TypeError, "int64"):
        K.conv2d_forward(np.zeros((1, 1, 3, 3), np.int64), np.zeros((1, 1, 3, 3), np.int64))


# ---------------------------------------------------------------------------------------------
# CUDA: the same numbers as the NumPy path
# ---------------------------------------------------------------------------------------------


def _rel(a, b):
    return float(np.abs(a - b).max() / max(1e-30, np.abs(b).max()))


@pytest.mark.cuda
@settings(max_examples=25, deadline=None)
@given(case=conv_cases(), dtype=st.sampled_from([np.float32, np.float64]))
def test_cuda_conv2d_matches_numpy(cupy, case, dtype):
    x_shape, w_shape, s, p, d, seed = case
    rng = np.random.default_rng(seed)
    x, w = _rand(rng, x_shape, dtype), _rand(rng, w_shape, dtype)
    b = _rand(rng, (w_shape[0],), dtype)
    y = K.conv2d_forward(x, w, b, s, p, d)
    gy = _rand(rng, y.shape, dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    X, W, B, GY = (cupy.asarray(a) for a in (x, w, b, gy))
    Y = K.conv2d_forward(X, W, B, s, p, d)
    assert isinstance(Y, cupy.ndarray) and Y.dtype == dtype
    assert _rel(cupy.asnumpy(Y), y) < tol
    gx = K.conv2d_backward_input(GY, W, x_shape, s, p, d)
    assert _rel(cupy.asnumpy(gx), K.conv2d_backward_input(gy, w, x_shape, s, p, d)) < tol
    gw = K.conv2d_backward_weight(GY, X, w_shape, s, p, d)
    assert _rel(cupy.asnumpy(gw), K.conv2d_backward_weight(gy, x, w_shape, s, p, d)) < tol


@pytest.mark.cuda
@settings(max_examples=25, deadline=None)
@given(case=conv_transpose_cases(), dtype=st.sampled_from([np.float32, np.float64]))
def test_cuda_conv_transpose2d_matches_numpy(cupy, case, dtype):
    x_shape, w_shape, s, p, op, d, seed = case
    rng = np.random.default_rng(seed)
    x, w = _rand(rng, x_shape, dtype), _rand(rng, w_shape, dtype)
    b = _rand(rng, (w_shape[1],), dtype)
    y = K.conv_transpose2d_forward(x, w, b, s, p, op, d)
    gy = _rand(rng, y.shape, dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    X, W, B, GY = (cupy.asarray(a) for a in (x, w, b, gy))
    assert _rel(cupy.asnumpy(K.conv_transpose2d_forward(X, W, B, s, p, op, d)), y) < tol
    gx = K.conv_transpose2d_backward_input(GY, W, s, p, d, output_padding=op)
    ref = K.conv_transpose2d_backward_input(gy, w, s, p, d, output_padding=op)
    assert _rel(cupy.asnumpy(gx), ref) < tol
    gw = K.conv_transpose2d_backward_weight(GY, X, w_shape, s, p, d)
    assert _rel(cupy.asnumpy(gw), K.conv_transpose2d_backward_weight(gy, x, w_shape, s, p, d)) < tol


@pytest.mark.cuda
def test_cuda_large_batch_layer(cupy):
    """A GAN-sized layer (64 -> 128, 16x16, k=4, s=2, p=1) on the GPU against NumPy."""
    rng = np.random.default_rng(3)
    x = _rand(rng, (16, 64, 16, 16), np.float32)
    w = _rand(rng, (128, 64, 4, 4), np.float32)
    y = K.conv2d_forward(x, w, None, 2, 1)
    gy = _rand(rng, y.shape, np.float32)
    X, W, GY = cupy.asarray(x), cupy.asarray(w), cupy.asarray(gy)
    assert _rel(cupy.asnumpy(K.conv2d_forward(X, W, None, 2, 1)), y) < 1e-5
    assert _rel(
        cupy.asnumpy(K.conv2d_backward_input(GY, W, x.shape, 2, 1)),
        K.conv2d_backward_input(gy, w, x.shape, 2, 1),
    ) < 1e-5
    assert _rel(
        cupy.asnumpy(K.conv2d_backward_weight(GY, X, w.shape, 2, 1)),
        K.conv2d_backward_weight(gy, x, w.shape, 2, 1),
    ) < 1e-5


@pytest.mark.cuda
def test_mixing_devices_is_an_error(cupy):
    with _raises(TypeError, "numpy", "cupy"):
        K.conv2d_forward(np.zeros((1, 1, 3, 3)), cupy.zeros((1, 1, 3, 3)))
