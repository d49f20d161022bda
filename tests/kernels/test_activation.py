"""Activation kernels against their definitions, on the CPU and (emulated or real) CUDA."""
from __future__ import annotations

import numpy as np
import pytest

from scratchgen.kernels import activation as act
from scratchgen.kernels.activation import (
    leaky_relu_backward, leaky_relu_derivative, leaky_relu_forward,
)

SLOPES = [0.0, 0.01, 0.2, 1 / 3, 1.0, 1.5, -0.5]


def _inputs(dtype, shape=(3, 4, 5)):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    x.flat[:6] = [0.0, -0.0, np.nan, np.inf, -np.inf, 1e-30]
    g.flat[6:9] = [np.inf, -np.inf, np.nan]
    return x, g


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("slope", SLOPES)
def test_cpu_matches_the_definition(dtype, slope):
    x, g = _inputs(dtype)
    a = x.dtype.type(slope)
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(leaky_relu_forward(x, slope), np.where(x > 0, x, a * x))
        np.testing.assert_array_equal(leaky_relu_backward(x, g, slope), np.where(x > 0, g, a * g))
    d = leaky_relu_derivative(x, slope)
    assert d.dtype == dtype
    np.testing.assert_array_equal(d, np.where(x > 0, 1, a).astype(dtype))  # exactly 1 or a


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("slope", [0.2, 1.5])
def test_cuda_matches_cpu(cupy, dtype, slope):
    x, g = _inputs(dtype, (6, 7, 9))
    xg, gg = cupy.asarray(x), cupy.asarray(g)
    with np.errstate(invalid="ignore"):
        cases = [(leaky_relu_forward(xg, slope), leaky_relu_forward(x, slope)),
                 (leaky_relu_backward(xg, gg, slope), leaky_relu_backward(x, g, slope)),
                 (leaky_relu_derivative(xg, slope), leaky_relu_derivative(x, slope)),
                 # non-contiguous views, and 0-d arrays
                 (leaky_relu_backward(xg[:, ::2].T, gg[:, ::2].T, slope),
                  leaky_relu_backward(x[:, ::2].T, g[:, ::2].T, slope)),
                 (leaky_relu_forward(xg[1, 2, 3], slope), leaky_relu_forward(x[1, 2, 3], slope)),
                 (leaky_relu_backward(xg[0, 0, 0], gg[0, 0, 0], slope),
                  leaky_relu_backward(x[0, 0, 0], g[0, 0, 0], slope)),
                 # a derivative asked for in another dtype than x's
                 (leaky_relu_derivative(xg, slope, np.float64 if dtype == np.float32 else
                                        np.float32).astype(dtype),
                  leaky_relu_derivative(x, slope, np.float64 if dtype == np.float32 else
                                        np.float32).astype(dtype))]
    for got, want in cases:
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(cupy.asnumpy(got), want)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cuda_relu_tanh_sigmoid_match_cpu(cupy, dtype):
    """ReLU's mask exactly; tanh and sigmoid to rounding (a GPU's tanh and fused multiply-adds
    may differ from NumPy's in the last bits)."""
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((5, 6, 7)) * 30).astype(dtype)     # far into both tails
    g = rng.standard_normal(x.shape).astype(dtype)
    x.flat[:3] = [0.0, -0.0, 1e-30]
    y_t, y_s = np.tanh(x), act.sigmoid_forward(x)
    xg, gg, ytg, ysg = (cupy.asarray(a) for a in (x, g, y_t, y_s))
    relu_y = np.maximum(x, 0)
    np.testing.assert_array_equal(cupy.asnumpy(act.relu_backward(cupy.asarray(relu_y), gg)),
                                  act.relu_backward(relu_y, g))
    # (tanh(x/2) + 1) / 2 cancels in the negative tail: both devices are off by ~eps there
    rtol, atol = (1e-6, 4e-7) if dtype == np.float32 else (1e-14, 1e-15)
    for got, want in [(act.sigmoid_forward(xg), y_s), (act.tanh_backward(ytg, gg),
                                                       act.tanh_backward(y_t, g)),
                      (act.sigmoid_backward(ysg, gg), act.sigmoid_backward(y_s, g))]:
        assert got.dtype == dtype
        np.testing.assert_allclose(cupy.asnumpy(got), want, rtol=rtol, atol=atol)
    assert 0 <= y_s.min() and y_s.max() <= 1 and np.isfinite(y_s).all()
