"""The CPU convolution's inner paths (batch chunks, blocked transposes, NCHW planes, stride
phases, saved columns, 1 x 1) give the results of the naive references."""
from __future__ import annotations

import numpy as np
import pytest

from conv_cases import (close, rand, ref_conv2d, ref_conv2d_backward_input,
                        ref_conv2d_backward_weight, ref_conv_transpose2d)
from scratchgen.kernels import conv as K
from scratchgen.kernels.conv import cpu_forward, cpu_input_grad, geometry

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
    monkeypatch.setattr(cpu_input_grad, "_SUBPIXEL_ROWS", 1)  # the stride-phase path for (4, 4) / (2, 2)
    monkeypatch.setattr(cpu_input_grad, "_SUBPIXEL_SPARE", np.inf)
    rng = np.random.default_rng(1)
    x, w = rand(rng, x_shape, dtype), rand(rng, w_shape, dtype)
    b = rand(rng, (w_shape[0],), dtype)
    y0 = K.conv2d_forward(x, w, b, s, p, d)
    gy = rand(rng, y0.shape, dtype)
    gx0 = K.conv2d_backward_input(gy, w, x_shape, s, p, d)
    gw0 = K.conv2d_backward_weight(gy, x, w_shape, s, p, d)
    bt = rand(rng, (w_shape[1],), dtype)
    yt0 = K.conv_transpose2d_forward(y0, w, bt, s, p, 0, d)
    monkeypatch.setattr(cpu_forward, "_TRANSPOSE_BLOCK_BYTES", 64)
    monkeypatch.setattr(cpu_forward, "_COLS_BUDGET_BYTES", 1)  # one image per chunk
    assert len(cpu_forward._chunks(geometry._geometry("t", x_shape, w_shape, s, p, d), x.itemsize)[0]) > 1
    tol = 1e-5 if dtype == np.float32 else 1e-12
    close(K.conv2d_forward(x, w, b, s, p, d), y0, tol)
    close(K.conv2d_backward_input(gy, w, x_shape, s, p, d), gx0, tol)
    close(K.conv2d_backward_weight(gy, x, w_shape, s, p, d), gw0, tol)
    close(K.conv_transpose2d_forward(y0, w, bt, s, p, 0, d), yt0, tol)
    close(ref_conv2d(x, w, b, s, p, d), y0, tol)
    close(ref_conv_transpose2d(y0, w, bt, s, p, (0, 0), d), yt0, tol)


def test_stride_phase_path_matches_col2im(monkeypatch):
    """The stride-phase input gradient (stride dividing the kernel) against col2im and the
    reference, over every such kernel/stride pair up to 4, paddings up to the kernel, sizes
    down to a single pixel and transposed convolutions with output_padding and bias."""
    rng = np.random.default_rng(5)
    monkeypatch.setattr(cpu_input_grad, "_SUBPIXEL_ROWS", 1)  # taken for every shape here
    monkeypatch.setattr(cpu_input_grad, "_SUBPIXEL_SPARE", np.inf)
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
                    geo = geometry._geometry("t", x_shape, w_shape, (sh, sw), (ph, pw), 1)
                    assert cpu_input_grad._subpixel(geo)
                    w = rand(rng, w_shape)
                    gy = rand(rng, (2, 4, geo.ho, geo.wo))
                    got = K.conv2d_backward_input(gy, w, x_shape, (sh, sw), (ph, pw))
                    close(got, ref_conv2d_backward_input(gy, w, x_shape, (sh, sw), (ph, pw),
                                                          (1, 1)), 1e-12)
                    for op in {(0, 0), (sh - 1, sw - 1)}:
                        bt = rand(rng, (3,))
                        yt = K.conv_transpose2d_forward(gy, w, bt, (sh, sw), (ph, pw), op)
                        close(yt, ref_conv_transpose2d(gy, w, bt, (sh, sw), (ph, pw), op,
                                                        (1, 1)), 1e-12)
                        with monkeypatch.context() as m:
                            m.setattr(cpu_input_grad, "_subpixel", lambda geo: False)
                            close(K.conv_transpose2d_forward(gy, w, bt, (sh, sw), (ph, pw), op),
                                   yt, 1e-12)
                    cases += 1
    assert cases > 100


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("channels", [5, 8])  # NCHW planes, NHWC rows
def test_saved_columns_give_the_same_gradients(monkeypatch, dtype, channels):
    """The forward's im2col matrix, kept for the weight gradient, changes no result; it is
    refused for another convolution, and not kept above the size budget or for 1 x 1."""
    rng = np.random.default_rng(2)
    x, w = rand(rng, (3, channels, 9, 8), dtype), rand(rng, (4, channels, 3, 4), dtype)
    b = rand(rng, (4,), dtype)
    y, cols = K.conv2d_forward_with_columns(x, w, b, (2, 1), (1, 2), (1, 2))
    l, k = y.shape[2] * y.shape[3], channels * 3 * 4
    assert cols is not None
    assert cols.matrix.shape == ((3, k, l) if channels < cpu_forward._PLANES_MAX_CHANNELS else (3 * l, k))
    np.testing.assert_array_equal(y, K.conv2d_forward(x, w, b, (2, 1), (1, 2), (1, 2)))
    gy = rand(rng, y.shape, dtype)
    gw = K.conv2d_backward_weight(gy, x, w.shape, (2, 1), (1, 2), (1, 2), columns=cols)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    close(gw, K.conv2d_backward_weight(gy, x, w.shape, (2, 1), (1, 2), (1, 2)), tol)
    close(gw, ref_conv2d_backward_weight(gy, x, w.shape, (2, 1), (1, 2), (1, 2)), tol)
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
    monkeypatch.setattr(cpu_forward, "_SAVED_COLUMNS_BYTES", 100)
    y2, none = K.conv2d_forward_with_columns(x, w, b, (2, 1), (1, 2), (1, 2))
    assert none is None
    np.testing.assert_array_equal(y2, y)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pointwise_convolution_path(dtype):
    """1 x 1, stride 1, no padding: the per-image matrix product path, against the references,
    including a non-contiguous input and a transposed convolution with a bias."""
    rng = np.random.default_rng(4)
    x = rand(rng, (3, 7, 4, 5), dtype)[:, ::2]  # (3, 4, 4, 5), non-contiguous
    w, b = rand(rng, (6, 4, 1, 1), dtype), rand(rng, (6,), dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    y = K.conv2d_forward(x, w, b)
    close(y, ref_conv2d(x, w, b, (1, 1), (0, 0), (1, 1)), tol)
    gy = rand(rng, y.shape, dtype)
    gx, gw = K.conv2d_backward_input(gy, w, x.shape), K.conv2d_backward_weight(gy, x, w.shape)
    # adjoint identities: <gy, conv(x)> = <gx, x> = <gw, w> (conv without bias is bilinear)
    inner = float((gy * ref_conv2d(x, w, None, (1, 1), (0, 0), (1, 1))).sum())
    assert np.isclose(float((gx * x).sum()), inner, rtol=1e-4 if dtype == np.float32 else 1e-10)
    assert np.isclose(float((gw * w).sum()), inner, rtol=1e-4 if dtype == np.float32 else 1e-10)
    bt = rand(rng, (4,), dtype)
    close(K.conv_transpose2d_forward(gy, w, bt),
           ref_conv_transpose2d(gy, w, bt, (1, 1), (0, 0), (0, 0), (1, 1)),
           tol)


def test_non_contiguous_inputs():
    rng = np.random.default_rng(2)
    x = rand(rng, (2, 7, 6, 3)).transpose(0, 3, 1, 2)  # (2, 3, 7, 6), not C-contiguous
    w = rand(rng, (3, 4, 3, 2)).transpose(1, 0, 2, 3)  # (4, 3, 3, 2), a view
    y = K.conv2d_forward(x, w, None, 1, 1, 1)
    close(y, ref_conv2d(x, w, None, (1, 1), (1, 1), (1, 1)), 1e-12)
    gy = rand(rng, y.shape[::-1]).transpose(3, 2, 1, 0)
    close(
        K.conv2d_backward_input(gy, w, x.shape, 1, 1, 1),
        ref_conv2d_backward_input(gy, w, x.shape, (1, 1), (1, 1), (1, 1)),
        1e-12,
    )
    close(
        K.conv2d_backward_weight(gy, x, w.shape, 1, 1, 1),
        ref_conv2d_backward_weight(gy, x, w.shape, (1, 1), (1, 1), (1, 1)),
        1e-12,
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "x_shape,w_shape,s,p,d",
    [
        ((3, 8, 9, 7), (5, 8, 3, 3), (1, 1), (1, 1), (1, 1)),  # a "same" 3x3
        ((2, 9, 10, 8), (4, 9, 3, 2), (1, 2), (0, 1), (2, 1)),  # stride 2 across, dilated rows
        ((2, 8, 7, 9), (3, 8, 7, 7), (1, 1), (3, 3), (1, 1)),  # CycleGAN's 7x7
        ((2, 8, 5, 6), (3, 8, 2, 1), (1, 3), (0, 0), (1, 1)),  # one kernel column
    ],
)
def test_kernel_rows_path(monkeypatch, dtype, x_shape, w_shape, s, p, d):
    """Stride 1 down the rows goes by kernel rows (row windows, one product per kernel row):
    forward, the weight gradient from the saved row windows and without them, and in chunks
    of one image, all equal the references."""
    geo = geometry._geometry("t", x_shape, w_shape, s, p, d)
    assert cpu_forward._rows(geo)
    rng = np.random.default_rng(3)
    x, w, b = rand(rng, x_shape, dtype), rand(rng, w_shape, dtype), rand(rng, w_shape[:1], dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for budget in (cpu_forward._COLS_BUDGET_BYTES, 1):
        monkeypatch.setattr(cpu_forward, "_COLS_BUDGET_BYTES", budget)
        y, columns = K.conv2d_forward_with_columns(x, w, b, s, p, d)
        assert columns.matrix.shape == (x_shape[0], geo.hp, geo.wo, w_shape[3] * x_shape[1])
        close(y, ref_conv2d(x, w, b, s, p, d), tol)
        gy = rand(rng, y.shape, dtype)
        want = ref_conv2d_backward_weight(gy, x, w_shape, s, p, d)
        close(K.conv2d_backward_weight(gy, x, w_shape, s, p, d, columns=columns), want, tol)
        close(K.conv2d_backward_weight(gy, x, w_shape, s, p, d), want, tol)
        close(K.conv2d_backward_input(gy, w, x_shape, s, p, d),
              ref_conv2d_backward_input(gy, w, x_shape, s, p, d), tol)
