"""kernels.resample against explicit-loop references, known values and adjoint identities."""
from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scratchgen.kernels.resample as resample
from scratchgen.kernels.resample import (upsample_bilinear2d, upsample_bilinear2d_backward,
                                         upsample_nearest2d, upsample_nearest2d_backward)

SETTINGS = settings(max_examples=150, deadline=None)


@contextlib.contextmanager
def bilinear_path(dense: bool):
    """Run the bilinear maps as dense matrix products (small images) or as gathers."""
    saved = resample._DENSE_MAX_SIZE
    resample._DENSE_MAX_SIZE = 10**9 if dense else 0
    try:
        yield
    finally:
        resample._DENSE_MAX_SIZE = saved


def nearest_src(o, n_in, n_out):
    """PyTorch's rule, one index at a time: floor(o * (n_in / n_out)) in float32 arithmetic."""
    if n_out == n_in:
        return o
    if n_out == 2 * n_in:
        return o // 2
    scale = np.float32(n_in) / np.float32(n_out)
    return min(int(math.floor(np.float32(o) * scale)), n_in - 1)


def nearest_reference(x, size):
    *lead, h, w = x.shape
    y = np.empty((*lead, *size))
    for o in range(size[0]):
        for q in range(size[1]):
            y[..., o, q] = x[..., nearest_src(o, h, size[0]), nearest_src(q, w, size[1])]
    return y


def linear_src(o, n_in, n_out, align_corners):
    """(i0, i1, lambda) of output o, from the formulas of PyTorch's interpolate, in float64."""
    if align_corners:
        c = o * (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    else:
        c = max((o + 0.5) * n_in / n_out - 0.5, 0.0)
    i0 = min(int(math.floor(c)), n_in - 1)
    i1 = min(i0 + 1, n_in - 1)
    return i0, i1, min(max(c - i0, 0.0), 1.0)


def bilinear_reference(x, size, align_corners):
    *lead, h, w = x.shape
    y = np.empty((*lead, *size))
    for o in range(size[0]):
        i0, i1, a = linear_src(o, h, size[0], align_corners)
        for q in range(size[1]):
            j0, j1, b = linear_src(q, w, size[1], align_corners)
            y[..., o, q] = ((1 - a) * (1 - b) * x[..., i0, j0] + (1 - a) * b * x[..., i0, j1]
                            + a * (1 - b) * x[..., i1, j0] + a * b * x[..., i1, j1])
    return y


def bilinear_backward_reference(gy, in_size, align_corners):
    *lead, oh, ow = gy.shape
    gx = np.zeros((*lead, *in_size))
    for o in range(oh):
        i0, i1, a = linear_src(o, in_size[0], oh, align_corners)
        for q in range(ow):
            j0, j1, b = linear_src(q, in_size[1], ow, align_corners)
            g = gy[..., o, q]
            gx[..., i0, j0] += (1 - a) * (1 - b) * g
            gx[..., i0, j1] += (1 - a) * b * g
            gx[..., i1, j0] += a * (1 - b) * g
            gx[..., i1, j1] += a * b * g
    return gx


@st.composite
def resample_cases(draw):
    h, w = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    size = (draw(st.integers(1, 15)), draw(st.integers(1, 15)))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), h, w)
    x = np.random.default_rng(draw(st.integers(0, 2**16))).standard_normal(shape)
    return x, size


@SETTINGS
@given(resample_cases())
def test_nearest_matches_reference(case):
    x, size = case
    np.testing.assert_array_equal(upsample_nearest2d(x, size), nearest_reference(x, size))


@SETTINGS
@given(resample_cases(), st.booleans(), st.booleans())
def test_bilinear_matches_reference(case, align_corners, dense):
    x, size = case
    with bilinear_path(dense):
        y = upsample_bilinear2d(x, size, align_corners)
    np.testing.assert_allclose(y, bilinear_reference(x, size, align_corners), rtol=1e-12,
                               atol=1e-12)


@SETTINGS
@given(resample_cases(), st.booleans(), st.booleans())
def test_bilinear_backward_matches_reference(case, align_corners, dense):
    x, size = case
    gy = np.random.default_rng(0).standard_normal(x.shape[:-2] + size)
    with bilinear_path(dense):
        gx = upsample_bilinear2d_backward(gy, x.shape[-2:], align_corners)
    np.testing.assert_allclose(gx, bilinear_backward_reference(gy, x.shape[-2:], align_corners),
                               rtol=1e-10, atol=1e-12)


@SETTINGS
@given(resample_cases(), st.sampled_from(["nearest", "bilinear", "bilinear_ac"]), st.booleans())
def test_adjoint_identity(case, mode, dense):
    """<f(x), gy> = <x, f_backward(gy)> for the (linear) resampling maps."""
    x, size = case
    gy = np.random.default_rng(1).standard_normal(x.shape[:-2] + size)
    if mode == "nearest":
        y, gx = upsample_nearest2d(x, size), upsample_nearest2d_backward(gy, x.shape[-2:])
    else:
        ac = mode == "bilinear_ac"
        with bilinear_path(dense):
            y = upsample_bilinear2d(x, size, ac)
            gx = upsample_bilinear2d_backward(gy, x.shape[-2:], ac)
    assert y.shape == gy.shape and gx.shape == x.shape
    np.testing.assert_allclose(np.vdot(y, gy), np.vdot(x, gx), rtol=1e-10, atol=1e-10)


def test_known_values():
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_allclose(upsample_bilinear2d(x, 4), [
        [1.0, 1.25, 1.75, 2.0], [1.5, 1.75, 2.25, 2.5],
        [2.5, 2.75, 3.25, 3.5], [3.0, 3.25, 3.75, 4.0]])
    np.testing.assert_allclose(upsample_bilinear2d(x, 3, align_corners=True), [
        [1.0, 1.5, 2.0], [2.0, 2.5, 3.0], [3.0, 3.5, 4.0]])
    assert upsample_nearest2d(x, 4).tolist() == [
        [1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]
    assert upsample_nearest2d(x, (2, 3)).tolist() == [[1, 1, 2], [3, 3, 4]]
    assert upsample_nearest2d_backward(np.ones((4, 4)), (2, 2)).tolist() == [[4, 4], [4, 4]]
    # a downsampling by 2 reads every other pixel; the rest get no gradient
    assert upsample_nearest2d_backward(np.ones((2, 2)), (4, 4))[::2, ::2].tolist() == [
        [1, 1], [1, 1]]
    assert upsample_nearest2d_backward(np.ones((2, 2)), (4, 4)).sum() == 4


def test_nearest_uses_float32_scale_like_pytorch():
    """2 -> 82: exact arithmetic gives floor(41 * 2 / 82) = 1, but PyTorch's float32 scale
    (2 / 82 rounded down) gives floor(40.99999...) = 0 at output 41."""
    x = np.array([[10.0, 20.0]])
    y = upsample_nearest2d(x, (1, 82))
    assert y[0, 41] == 10.0 and y[0, 42] == 20.0


def test_integer_factors_match_exact_rule():
    x = np.random.default_rng(0).standard_normal((3, 5, 6))
    for size in [(10, 12), (15, 18), (5, 3), (1, 2), (20, 24)]:
        rows = np.arange(size[0]) * 5 // size[0]
        cols = np.arange(size[1]) * 6 // size[1]
        np.testing.assert_array_equal(upsample_nearest2d(x, size), x[:, rows][:, :, cols])


def test_non_finite_pixel_stays_local():
    """An inf pixel spreads only to the outputs that interpolate it (no 0 * inf = NaN smearing
    from the zeros of a dense interpolation matrix)."""
    x = np.zeros((1, 8, 8))
    x[0, 0, 0] = np.inf
    y = upsample_bilinear2d(x, 16)
    assert np.isinf(y[0, 0, 0])
    assert np.isfinite(y[0, 8:, :]).all() and np.isfinite(y[0, :, 8:]).all()
    assert not np.isnan(y).any()


def test_large_images_match_small_path():
    """Above the dense-size threshold the gather path runs; both agree."""
    x = np.random.default_rng(0).standard_normal((1, 2, 130, 20))
    gy = np.random.default_rng(1).standard_normal((1, 2, 61, 45))
    for ac in (False, True):
        y = upsample_bilinear2d(x, (61, 45), ac)
        gx = upsample_bilinear2d_backward(gy, (130, 20), ac)
        with bilinear_path(dense=True):
            np.testing.assert_allclose(upsample_bilinear2d(x, (61, 45), ac), y, rtol=1e-12,
                                       atol=1e-12)
            np.testing.assert_allclose(upsample_bilinear2d_backward(gy, (130, 20), ac), gx,
                                       rtol=1e-12, atol=1e-12)


def test_float32_close_to_float64():
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 7))
    for ac in (False, True):
        y64 = upsample_bilinear2d(x, (11, 4), ac)
        y32 = upsample_bilinear2d(x.astype(np.float32), (11, 4), ac)
        assert y32.dtype == np.float32
        np.testing.assert_allclose(y32, y64, rtol=1e-4, atol=1e-6)
        g32 = upsample_bilinear2d_backward(y32, (5, 7), ac)
        assert g32.dtype == np.float32
        np.testing.assert_allclose(g32, upsample_bilinear2d_backward(y64, (5, 7), ac),
                                   rtol=1e-4, atol=1e-5)
    y32 = upsample_nearest2d(x.astype(np.float32), (9, 9))
    assert y32.dtype == np.float32
    assert upsample_nearest2d_backward(y32, (5, 7)).dtype == np.float32


def test_errors():
    with pytest.raises(ValueError, match="positive"):
        upsample_nearest2d(np.zeros((1, 2, 2)), (0, 3))
    with pytest.raises(ValueError, match=r"\(4,\)"):
        upsample_bilinear2d(np.zeros(4), 3)
    with pytest.raises(ValueError, match=r"\(1, 0, 3\)"):
        upsample_bilinear2d(np.zeros((1, 0, 3)), 3)
    with pytest.raises(ValueError, match="pair"):
        upsample_nearest2d(np.zeros((2, 2)), (1, 2, 3))


# --------------------------------------------------------------------------------------------
# CUDA path against the NumPy path
# --------------------------------------------------------------------------------------------


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [(14, 12), (5, 3), (7, 13), (1, 1)])
def test_cuda_matches_numpy(cupy, size, dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 7, 6)).astype(dtype)
    gy = rng.standard_normal((2, 3) + size).astype(dtype)
    xg, gyg = cupy.asarray(x), cupy.asarray(gy)
    np.testing.assert_array_equal(cupy.asnumpy(upsample_nearest2d(xg, size)),
                                  upsample_nearest2d(x, size))
    np.testing.assert_allclose(cupy.asnumpy(upsample_nearest2d_backward(gyg, (7, 6))),
                               upsample_nearest2d_backward(gy, (7, 6)), rtol=1e-5, atol=1e-5)
    for ac in (False, True):
        np.testing.assert_allclose(cupy.asnumpy(upsample_bilinear2d(xg, size, ac)),
                                   upsample_bilinear2d(x, size, ac), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(
            cupy.asnumpy(upsample_bilinear2d_backward(gyg, (7, 6), ac)),
            upsample_bilinear2d_backward(gy, (7, 6), ac), rtol=1e-5, atol=1e-5)
