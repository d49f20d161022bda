"""kernels.pad against explicit-loop references, adjoint identities and argument checks."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchgen.kernels.pad import MODES, pad2d, pad2d_backward

SETTINGS = settings(max_examples=150, deadline=None)


def _source(u: int, n: int, mode: str) -> int | None:
    """Input position copied into virtual position u (None: the constant), by walking."""
    if 0 <= u < n:
        return u
    if mode == "zeros":
        return None
    if mode == "replicate":
        return 0 if u < 0 else n - 1
    if mode == "circular":
        return u + n if u < 0 else u - n
    # reflect: mirror about the edge pixels until inside
    while not 0 <= u < n:
        u = -u if u < 0 else 2 * (n - 1) - u
    return u


def pad_reference(x, pads, mode, value=0.0):
    left, right, top, bottom = pads
    *lead, h, w = x.shape
    y = np.empty((*lead, top + h + bottom, left + w + right))
    for p in range(y.shape[-2]):
        for q in range(y.shape[-1]):
            i, j = _source(p - top, h, mode), _source(q - left, w, mode)
            y[..., p, q] = value if i is None or j is None else x[..., i, j]
    return y


def pad_backward_reference(gy, pads, mode, h, w):
    left, _, top, _ = pads
    gx = np.zeros(gy.shape[:-2] + (h, w))
    for p in range(gy.shape[-2]):
        for q in range(gy.shape[-1]):
            i, j = _source(p - top, h, mode), _source(q - left, w, mode)
            if i is not None and j is not None:
                gx[..., i, j] += gy[..., p, q]
    return gx


@st.composite
def pad_cases(draw):
    mode = draw(st.sampled_from(MODES))
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    h, w = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    limit = {"reflect": lambda m: m - 1, "circular": lambda m: m}.get(mode, lambda m: 4)
    left, right = (draw(st.integers(0, limit(w))) for _ in range(2))
    top, bottom = (draw(st.integers(0, limit(h))) for _ in range(2))
    seed = draw(st.integers(0, 2**16))
    x = np.random.default_rng(seed).standard_normal((n, c, h, w))
    return x, (left, right, top, bottom), mode


@SETTINGS
@given(pad_cases(), st.floats(-2, 2))
def test_forward_matches_reference(case, value):
    x, pads, mode = case
    np.testing.assert_array_equal(pad2d(x, pads, mode, value=value),
                                  pad_reference(x, pads, mode, value))


@SETTINGS
@given(pad_cases())
def test_backward_matches_reference(case):
    x, pads, mode = case
    gy = np.random.default_rng(1).standard_normal(pad2d(x, pads, mode).shape)
    np.testing.assert_allclose(pad2d_backward(gy, pads, mode),
                               pad_backward_reference(gy, pads, mode, *x.shape[-2:]),
                               rtol=1e-12, atol=1e-12)


@SETTINGS
@given(pad_cases())
def test_adjoint_identity(case):
    """<pad(x), gy> = <x, pad_backward(gy)>: the backward pass is the transpose of the forward."""
    x, pads, mode = case
    y = pad2d(x, pads, mode)
    gy = np.random.default_rng(2).standard_normal(y.shape)
    gx = pad2d_backward(gy, pads, mode)
    assert gx.shape == x.shape
    np.testing.assert_allclose(np.vdot(y, gy), np.vdot(x, gx), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("mode", MODES)
def test_float32_stays_float32(mode):
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 4))
    y64 = pad2d(x, (1, 2, 3, 1), mode)
    y32 = pad2d(x.astype(np.float32), (1, 2, 3, 1), mode)
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, y64, rtol=1e-6)
    g32 = pad2d_backward(y32, (1, 2, 3, 1), mode)
    assert g32.dtype == np.float32
    np.testing.assert_allclose(g32, pad2d_backward(y64, (1, 2, 3, 1), mode), rtol=1e-5)


def test_known_values():
    x = np.arange(3.0).reshape(1, 3)  # [0, 1, 2]
    assert pad2d(x, (2, 2, 0, 0), "reflect").tolist() == [[2, 1, 0, 1, 2, 1, 0]]
    assert pad2d(x, (2, 2, 0, 0), "replicate").tolist() == [[0, 0, 0, 1, 2, 2, 2]]
    assert pad2d(x, (2, 3, 0, 0), "circular").tolist() == [[1, 2, 0, 1, 2, 0, 1, 2]]
    assert pad2d(x, (1, 1, 1, 0), "zeros", value=7).tolist() == [[7, 7, 7, 7, 7], [7, 0, 1, 2, 7]]
    # Replicate folds a whole border strip back onto the edge pixel.
    g = pad2d_backward(np.ones((1, 7)), (2, 2, 0, 0), "replicate")
    assert g.tolist() == [[3, 1, 3]]


def test_pads_forms():
    x = np.random.default_rng(0).standard_normal((2, 4, 5))
    np.testing.assert_array_equal(pad2d(x, 1), pad2d(x, (1, 1, 1, 1)))
    np.testing.assert_array_equal(pad2d(x, (1, 2)), pad2d(x, (1, 2, 0, 0)))  # torch: last axis


def test_errors_name_shapes():
    x = np.zeros((1, 2, 3, 4))
    with pytest.raises(ValueError, match=r"reflect.*\(1, 2, 3, 4\)"):
        pad2d(x, (0, 0, 3, 0), "reflect")
    with pytest.raises(ValueError, match=r"reflect.*\(1, 2, 3, 4\)"):
        pad2d(x, (4, 0, 0, 0), "reflect")
    with pytest.raises(ValueError, match=r"circular.*\(1, 2, 3, 4\)"):
        pad2d(x, (5, 0, 0, 0), "circular")
    with pytest.raises(ValueError, match="mode"):
        pad2d(x, 1, "mirror")
    with pytest.raises(ValueError, match="non-negative"):
        pad2d(x, (-1, 0, 0, 0))
    with pytest.raises(ValueError, match=r"\(1, 2, 3, 4\)"):
        pad2d_backward(x, (3, 3, 0, 0), "zeros")
    with pytest.raises(ValueError, match="reflect"):
        pad2d_backward(np.zeros((1, 2, 5, 4)), (0, 0, 2, 1), "reflect")  # input H=2, pad 2


# --------------------------------------------------------------------------------------------
# CUDA path against the NumPy path
# --------------------------------------------------------------------------------------------


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", MODES)
def test_cuda_matches_numpy(cupy, mode, dtype):
    rng = np.random.default_rng(0)
    for shape, pads in [((2, 3, 7, 5), (1, 2, 3, 0)), ((1, 1, 4, 4), (3, 3, 3, 3)),
                        ((3, 6, 1), (0, 0, 0, 0))]:
        if mode == "reflect":
            pads = tuple(min(p, n - 1) for p, n in zip(pads, (shape[-1],) * 2 + (shape[-2],) * 2))
        x = rng.standard_normal(shape).astype(dtype)
        y = pad2d(x, pads, mode, value=0.5)
        y_gpu = pad2d(cupy.asarray(x), pads, mode, value=0.5)
        np.testing.assert_allclose(cupy.asnumpy(y_gpu), y, rtol=1e-5, atol=1e-6)
        gy = rng.standard_normal(y.shape).astype(dtype)
        gx_gpu = pad2d_backward(cupy.asarray(gy), pads, mode)
        np.testing.assert_allclose(cupy.asnumpy(gx_gpu), pad2d_backward(gy, pads, mode),
                                   rtol=1e-5, atol=1e-5)
