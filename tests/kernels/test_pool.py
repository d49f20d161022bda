"""kernels.pool against explicit-loop references, adjoint identities and argument checks."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchgen.kernels.pool import (avg_pool2d_backward, avg_pool2d_forward,
                                     max_pool2d_backward, max_pool2d_forward)

SETTINGS = settings(max_examples=150, deadline=None)


def out_size_reference(n, k, s, p, d, ceil_mode):
    """PyTorch's output size, written with math.floor / math.ceil on exact fractions."""
    span = n + 2 * p - d * (k - 1) - 1
    rnd = math.ceil if ceil_mode else math.floor
    out = rnd(span / s) + 1
    if ceil_mode and (out - 1) * s >= n + p:  # the last window may not start in the padding
        out -= 1
    return out


def max_pool_reference(x, k, s, p, d, ceil_mode):
    *lead, h, w = x.shape
    oh = out_size_reference(h, k[0], s[0], p[0], d[0], ceil_mode)
    ow = out_size_reference(w, k[1], s[1], p[1], d[1], ceil_mode)
    planes = x.reshape(-1, h, w)
    y = np.full((planes.shape[0], oh, ow), -np.inf)
    arg = np.full(y.shape, -1, dtype=np.int64)
    for n in range(planes.shape[0]):
        for o in range(oh):
            for q in range(ow):
                for a in range(k[0]):          # window order: row-major over offsets
                    for b in range(k[1]):
                        i, j = o * s[0] - p[0] + a * d[0], q * s[1] - p[1] + b * d[1]
                        if 0 <= i < h and 0 <= j < w:
                            v = planes[n, i, j]
                            if arg[n, o, q] < 0 or v > y[n, o, q]:   # first maximum wins
                                y[n, o, q], arg[n, o, q] = v, i * w + j
    return y.reshape(*lead, oh, ow), arg.reshape(*lead, oh, ow)


def max_pool_backward_reference(gy, arg, x_shape):
    h, w = x_shape[-2:]
    gx = np.zeros((int(np.prod(x_shape[:-2])), h * w))
    g2, a2 = gy.reshape(gx.shape[0], -1), arg.reshape(gx.shape[0], -1)
    for n in range(gx.shape[0]):
        for t in range(g2.shape[1]):
            if a2[n, t] >= 0:
                gx[n, a2[n, t]] += g2[n, t]
    return gx.reshape(x_shape)


def avg_pool_reference(x, k, s, p, ceil_mode, count_include_pad, divisor_override):
    *lead, h, w = x.shape
    oh = out_size_reference(h, k[0], s[0], p[0], 1, ceil_mode)
    ow = out_size_reference(w, k[1], s[1], p[1], 1, ceil_mode)
    planes = x.reshape(-1, h, w)
    y = np.zeros((planes.shape[0], oh, ow))
    for o in range(oh):
        for q in range(ow):
            total, real, span = 0.0, 0, 0
            for i in range(o * s[0] - p[0], o * s[0] - p[0] + k[0]):
                for j in range(q * s[1] - p[1], q * s[1] - p[1] + k[1]):
                    if i < h + p[0] and j < w + p[1]:   # inside input or padding
                        span += 1
                    if 0 <= i < h and 0 <= j < w:
                        real += 1
                        total = total + planes[:, i, j]
            div = divisor_override or (span if count_include_pad else real)
            y[:, o, q] = total / div
    return y.reshape(*lead, oh, ow)


@st.composite
def pool_cases(draw, dilation=True):
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    p = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))
    d = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if dilation else (1, 1)
    ceil_mode = draw(st.booleans())
    h = draw(st.integers(max(1, d[0] * (k[0] - 1) + 1 - 2 * p[0]), 9))
    w = draw(st.integers(max(1, d[1] * (k[1] - 1) + 1 - 2 * p[1]), 9))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), h, w)
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    if draw(st.booleans()):
        x = rng.integers(0, 3, size=shape).astype(np.float64)   # many ties
    else:
        x = rng.standard_normal(shape)
    return x, k, s, p, d, ceil_mode


@SETTINGS
@given(pool_cases())
def test_max_pool_forward_matches_reference(case):
    x, k, s, p, d, ceil_mode = case
    y, arg = max_pool2d_forward(x, k, s, p, d, ceil_mode)
    y_ref, arg_ref = max_pool_reference(x, k, s, p, d, ceil_mode)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(arg, arg_ref)
    assert arg.dtype == np.int64


@SETTINGS
@given(pool_cases())
def test_max_pool_backward_matches_scatter(case):
    x, k, s, p, d, ceil_mode = case
    y, arg = max_pool2d_forward(x, k, s, p, d, ceil_mode)
    gy = np.random.default_rng(0).standard_normal(y.shape)
    np.testing.assert_allclose(max_pool2d_backward(gy, arg, x.shape),
                               max_pool_backward_reference(gy, arg, x.shape), rtol=1e-12,
                               atol=1e-12)


@SETTINGS
@given(pool_cases(dilation=False), st.booleans(), st.sampled_from([None, 1, 5]))
def test_avg_pool_forward_matches_reference(case, count_include_pad, divisor_override):
    x, k, s, p, _, ceil_mode = case
    y = avg_pool2d_forward(x, k, s, p, ceil_mode, count_include_pad, divisor_override)
    y_ref = avg_pool_reference(x, k, s, p, ceil_mode, count_include_pad, divisor_override)
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)


@SETTINGS
@given(pool_cases(dilation=False), st.booleans(), st.sampled_from([None, 3]))
def test_avg_pool_adjoint_identity(case, count_include_pad, divisor_override):
    """<avg_pool(x), gy> = <x, avg_pool_backward(gy)>."""
    x, k, s, p, _, ceil_mode = case
    args = (k, s, p, ceil_mode, count_include_pad, divisor_override)
    y = avg_pool2d_forward(x, *args)
    gy = np.random.default_rng(3).standard_normal(y.shape)
    gx = avg_pool2d_backward(gy, x.shape, *args)
    assert gx.shape == x.shape
    np.testing.assert_allclose(np.vdot(y, gy), np.vdot(x, gx), rtol=1e-10, atol=1e-10)


def test_known_values():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    y, arg = max_pool2d_forward(x, 2)
    assert y[0, 0].tolist() == [[5, 7], [13, 15]]
    assert arg[0, 0].tolist() == [[5, 7], [13, 15]]
    assert avg_pool2d_forward(x, 2)[0, 0].tolist() == [[2.5, 4.5], [10.5, 12.5]]
    # ceil_mode keeps the partial last window: H=5, k=2, s=2 -> 3 outputs
    y, arg = max_pool2d_forward(np.arange(25.0).reshape(1, 5, 5), 2, ceil_mode=True)
    assert y.shape == (1, 3, 3) and y[0, 2, 2] == 24 and arg[0, 2, 2] == 24
    # ties: the first maximum in window order receives the whole gradient
    y, arg = max_pool2d_forward(np.ones((1, 1, 2, 2)), 2)
    assert arg.item() == 0
    assert max_pool2d_backward(np.ones((1, 1, 1, 1)), arg, (1, 1, 2, 2)).ravel().tolist() == [
        1, 0, 0, 0]
    # padding is -inf for max pooling, and excluded (or not) from the average's divisor
    x = np.ones((1, 1, 2, 2))
    assert max_pool2d_forward(-x, 3, stride=1, padding=1)[0].max() == -1
    assert avg_pool2d_forward(x, 3, stride=2, padding=1)[0, 0].tolist() == [[4 / 9]]
    assert avg_pool2d_forward(x, 3, stride=2, padding=1, count_include_pad=False).item() == 1


def test_overlapping_windows_accumulate():
    x = np.array([[[[0.0, 1.0, 0.0], [0.0, 9.0, 0.0], [0.0, 0.0, 0.0]]]])
    y, arg = max_pool2d_forward(x, 2, stride=1)
    assert (arg == 4).all()
    assert max_pool2d_backward(np.ones_like(y), arg, x.shape)[0, 0, 1, 1] == 4


def test_nan_propagates():
    x = np.zeros((1, 1, 2, 2))
    x[0, 0, 1, 0] = np.nan
    y, arg = max_pool2d_forward(x, 2)
    assert np.isnan(y).all() and arg.item() == 2


def test_padding_is_never_chosen():
    """-inf pixels lose ties to nothing, but a padding position is never an argmax."""
    x = np.full((1, 1, 2, 2), -np.inf)
    y, arg = max_pool2d_forward(x, 3, stride=1, padding=1)
    assert np.all(y == -np.inf) and np.all(arg == 0)


def test_window_entirely_in_padding():
    """With dilation a window can miss the input: -inf, index -1, and no gradient."""
    x = np.ones((1, 1, 2, 2))
    y, arg = max_pool2d_forward(x, 2, stride=1, padding=1, dilation=3)
    assert y.shape == (1, 1, 1, 1) and y.item() == -np.inf and arg.item() == -1
    assert not max_pool2d_backward(np.ones_like(y), arg, x.shape).any()


def test_float32_close_to_float64():
    x = np.random.default_rng(0).standard_normal((2, 3, 9, 8))
    y64, a64 = max_pool2d_forward(x, 3, 2, 1)
    y32, a32 = max_pool2d_forward(x.astype(np.float32), 3, 2, 1)
    assert y32.dtype == np.float32
    np.testing.assert_array_equal(a32, a64)
    np.testing.assert_allclose(y32, y64, rtol=1e-6)
    g32 = max_pool2d_backward(y32, a32, x.shape)
    assert g32.dtype == np.float32
    np.testing.assert_allclose(g32, max_pool2d_backward(y64, a64, x.shape), rtol=1e-6)
    a64 = avg_pool2d_forward(x, 3, 2, 1, ceil_mode=True, count_include_pad=False)
    a32 = avg_pool2d_forward(x.astype(np.float32), 3, 2, 1, ceil_mode=True,
                             count_include_pad=False)
    assert a32.dtype == np.float32
    np.testing.assert_allclose(a32, a64, rtol=1e-4, atol=1e-6)
    gb = avg_pool2d_backward(a32, x.shape, 3, 2, 1, ceil_mode=True, count_include_pad=False)
    assert gb.dtype == np.float32


def test_errors_name_shapes():
    x = np.zeros((1, 2, 3, 4))
    with pytest.raises(ValueError, match=r"padding.*half"):
        max_pool2d_forward(x, 2, padding=2)
    with pytest.raises(ValueError, match=r"padding.*half"):
        avg_pool2d_forward(x, (3, 3), padding=(1, 2))
    with pytest.raises(ValueError, match=r"larger than the padded input \(3, 4\).*\(1, 2, 3, 4\)"):
        max_pool2d_forward(x, 4)
    with pytest.raises(ValueError, match=r"\(1, 2, 3, 4\)"):
        max_pool2d_forward(x, 2, dilation=3)
    with pytest.raises(ValueError, match=r"\(1, 2, 5, 5\)"):
        avg_pool2d_forward(np.zeros((1, 2, 5, 5)), 6, padding=0)
    with pytest.raises(ValueError, match="positive"):
        avg_pool2d_forward(x, 2, stride=0)
    with pytest.raises(ValueError, match=r"gy has shape \(1, 2, 2, 2\)"):
        avg_pool2d_backward(np.zeros((1, 2, 2, 2)), x.shape, 2)
    y, arg = max_pool2d_forward(x, 2)
    with pytest.raises(ValueError, match="must match"):
        max_pool2d_backward(y, arg[..., :1], x.shape)


# --------------------------------------------------------------------------------------------
# CUDA path against the NumPy path
# --------------------------------------------------------------------------------------------


CUDA_CASES = [  # kernel, stride, padding, dilation, ceil_mode
    (2, None, 0, 1, False), (3, 2, 1, 1, True), ((3, 2), (1, 2), (1, 0), (2, 1), False),
    (3, 1, 1, 1, False), (4, 3, 2, 1, True),
]


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k, s, p, d, ceil_mode", CUDA_CASES)
def test_cuda_matches_numpy(cupy, k, s, p, d, ceil_mode, dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 11, 10)).astype(dtype)
    x[0, 0, 4, 4:6] = np.nan                 # NaN propagates, with the first NaN's index
    x[1, 2, 5:7, 5:7] = 0.5                  # ties: the first maximum in window order
    y, arg = max_pool2d_forward(x, k, s, p, d, ceil_mode)
    y_gpu, arg_gpu = max_pool2d_forward(cupy.asarray(x), k, s, p, d, ceil_mode)
    np.testing.assert_array_equal(cupy.asnumpy(y_gpu), y)      # NaN positions equal too
    np.testing.assert_array_equal(cupy.asnumpy(arg_gpu), arg)
    gy = rng.standard_normal(y.shape).astype(dtype)
    np.testing.assert_allclose(
        cupy.asnumpy(max_pool2d_backward(cupy.asarray(gy), arg_gpu, x.shape)),
        max_pool2d_backward(gy, arg, x.shape), rtol=1e-5, atol=1e-6)
    if d != 1:
        return
    x = np.nan_to_num(x)
    for include, override in [(True, None), (False, None), (True, 2)]:
        args = (k, s, p, ceil_mode, include, override)
        a = avg_pool2d_forward(x, *args)
        a_gpu = avg_pool2d_forward(cupy.asarray(x), *args)
        np.testing.assert_allclose(cupy.asnumpy(a_gpu), a, rtol=1e-5, atol=1e-6)
        ga = rng.standard_normal(a.shape).astype(dtype)
        np.testing.assert_allclose(
            cupy.asnumpy(avg_pool2d_backward(cupy.asarray(ga), x.shape, *args)),
            avg_pool2d_backward(ga, x.shape, *args), rtol=1e-5, atol=1e-6)
