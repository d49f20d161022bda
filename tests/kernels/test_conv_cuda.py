"""The CUDA convolution (on a GPU, or the CPU emulator) gives the NumPy path's numbers."""
from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conv_cases import conv_cases, conv_transpose_cases, rand
from scratchgen.kernels import conv as K

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
    x, w = rand(rng, x_shape, dtype), rand(rng, w_shape, dtype)
    b = rand(rng, (w_shape[0],), dtype)
    y = K.conv2d_forward(x, w, b, s, p, d)
    gy = rand(rng, y.shape, dtype)
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
    x, w = rand(rng, x_shape, dtype), rand(rng, w_shape, dtype)
    b = rand(rng, (w_shape[1],), dtype)
    y = K.conv_transpose2d_forward(x, w, b, s, p, op, d)
    gy = rand(rng, y.shape, dtype)
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
    x = rand(rng, (16, 64, 16, 16), np.float32)
    w = rand(rng, (128, 64, 4, 4), np.float32)
    y = K.conv2d_forward(x, w, None, 2, 1)
    gy = rand(rng, y.shape, np.float32)
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
    with pytest.raises(TypeError, match=re.escape("numpy") + ".*" + re.escape("cupy")):
        K.conv2d_forward(np.zeros((1, 1, 3, 3)), cupy.zeros((1, 1, 3, 3)))
