"""Convolution kernels against naive float64 references, adjoint identities and bad arguments."""
from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conv_cases import (SETTINGS, close, conv_cases, conv_transpose_cases, layout, rand,
                        ref_conv2d, ref_conv2d_backward_input, ref_conv2d_backward_weight,
                        ref_conv_transpose2d)
from scratchgen.kernels import conv as K

# ---------------------------------------------------------------------------------------------
# convolution against the references
# ---------------------------------------------------------------------------------------------


@SETTINGS
@given(conv_cases(), st.booleans(), st.booleans())
def test_conv2d_forward_matches_reference(case, with_bias, planes):
    x_shape, w_shape, s, p, d, seed = case
    rng = np.random.default_rng(seed)
    x, w = rand(rng, x_shape), rand(rng, w_shape)
    b = rand(rng, (w_shape[0],)) if with_bias else None
    ref = ref_conv2d(x, w, b, s, p, d)
    b32 = None if b is None else b.astype(np.float32)
    with layout(planes):
        y = K.conv2d_forward(x, w, b, stride=s, padding=p, dilation=d)
        y32 = K.conv2d_forward(x.astype(np.float32), w.astype(np.float32), b32, s, p, d)
    assert y.dtype == np.float64 and y.shape == ref.shape and y.flags.c_contiguous
    close(y, ref, 1e-12)
    assert y32.dtype == np.float32
    close(y32, ref, 1e-4)


@SETTINGS
@given(conv_cases(), st.booleans())
def test_conv2d_backward_input_matches_reference(case, planes):
    x_shape, w_shape, s, p, d, seed = case
    rng = np.random.default_rng(seed)
    w = rand(rng, w_shape)
    ho = K.conv_output_size(x_shape[2], w_shape[2], s[0], p[0], d[0])
    wo = K.conv_output_size(x_shape[3], w_shape[3], s[1], p[1], d[1])
    gy = rand(rng, (x_shape[0], w_shape[0], ho, wo))
    ref = ref_conv2d_backward_input(gy, w, x_shape, s, p, d)
    with layout(planes):
        gx = K.conv2d_backward_input(gy, w, x_shape, stride=s, padding=p, dilation=d)
        gx32 = K.conv2d_backward_input(gy.astype(np.float32), w.astype(np.float32), x_shape,
                                       s, p, d)
    assert gx.shape == x_shape and gx.dtype == np.float64 and gx.flags.c_contiguous
    close(gx, ref, 1e-12)
    assert gx32.dtype == np.float32
    close(gx32, ref, 1e-4)


@SETTINGS
@given(conv_cases(), st.booleans())
def test_conv2d_backward_weight_matches_reference(case, planes):
    x_shape, w_shape, s, p, d, seed = case
    rng = np.random.default_rng(seed)
    x = rand(rng, x_shape)
    ho = K.conv_output_size(x_shape[2], w_shape[2], s[0], p[0], d[0])
    wo = K.conv_output_size(x_shape[3], w_shape[3], s[1], p[1], d[1])
    gy = rand(rng, (x_shape[0], w_shape[0], ho, wo))
    ref = ref_conv2d_backward_weight(gy, x, w_shape, s, p, d)
    with layout(planes):
        gw = K.conv2d_backward_weight(gy, x, w_shape, stride=s, padding=p, dilation=d)
        gw32 = K.conv2d_backward_weight(gy.astype(np.float32), x.astype(np.float32), w_shape,
                                        s, p, d)
    assert gw.shape == w_shape and gw.dtype == np.float64 and gw.flags.c_contiguous
    close(gw, ref, 1e-12)
    assert gw32.dtype == np.float32
    close(gw32, ref, 1e-4)


@SETTINGS
@given(conv_cases(), st.booleans())
def test_conv2d_adjoint_identities(case, planes):
    """<conv(x, w), gy> = <x, backward_input(gy, w)> = <w, backward_weight(gy, x)>."""
    x_shape, w_shape, s, p, d, seed = case
    rng = np.random.default_rng(seed)
    x, w = rand(rng, x_shape), rand(rng, w_shape)
    y = K.conv2d_forward(x, w, None, s, p, d)
    gy = rand(rng, y.shape)
    lhs = np.vdot(y, gy)
    with layout(planes):
        gx = K.conv2d_backward_input(gy, w, x_shape, s, p, d)
    gw = K.conv2d_backward_weight(gy, x, w_shape, s, p, d)
    scale = np.abs(y).sum() * np.abs(gy).max() + 1.0
    assert abs(lhs - np.vdot(x, gx)) <= 1e-12 * scale
    assert abs(lhs - np.vdot(w, gw)) <= 1e-12 * scale


def test_bias_gradient():
    rng = np.random.default_rng(0)
    gy = rand(rng, (2, 3, 4, 5))
    np.testing.assert_allclose(K.conv2d_backward_bias(gy), gy.sum(axis=(0, 2, 3)))


# ---------------------------------------------------------------------------------------------
# transposed convolution
# ---------------------------------------------------------------------------------------------


@SETTINGS
@given(conv_transpose_cases(), st.booleans(), st.booleans())
def test_conv_transpose2d_matches_scatter_reference(case, with_bias, planes):
    x_shape, w_shape, s, p, op, d, seed = case
    rng = np.random.default_rng(seed)
    x, w = rand(rng, x_shape), rand(rng, w_shape)
    b = rand(rng, (w_shape[1],)) if with_bias else None
    ref = ref_conv_transpose2d(x, w, b, s, p, op, d)
    with layout(planes):
        y = K.conv_transpose2d_forward(x, w, b, stride=s, padding=p, output_padding=op,
                                       dilation=d)
    expected_hw = tuple(
        K.conv_transpose_output_size(x_shape[2 + a], w_shape[2 + a], s[a], p[a], op[a], d[a])
        for a in range(2)
    )
    assert y.shape == ref.shape == (x_shape[0], w_shape[1], *expected_hw)
    close(y, ref, 1e-12)
    b32 = None if b is None else b.astype(np.float32)
    with layout(planes):
        y32 = K.conv_transpose2d_forward(
            x.astype(np.float32), w.astype(np.float32), b32, s, p, op, d
        )
    assert y32.dtype == np.float32
    close(y32, ref, 1e-4)


@SETTINGS
@given(conv_transpose_cases())
def test_conv_transpose2d_backward_is_adjoint(case):
    """<convT(x, w), gy> = <x, backward_input(gy, w)> = <w, backward_weight(gy, x)>."""
    x_shape, w_shape, s, p, op, d, seed = case
    rng = np.random.default_rng(seed)
    x, w = rand(rng, x_shape), rand(rng, w_shape)
    y = K.conv_transpose2d_forward(x, w, None, s, p, op, d)
    gy = rand(rng, y.shape)
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
        close(gx, gx_ref, 1e-12)


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
