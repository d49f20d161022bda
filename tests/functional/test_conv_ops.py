"""Convolution-family ops beyond gradient checks: float32 accuracy, shapes, bad arguments."""
from __future__ import annotations

import numpy as np
import pytest

import scratchgen as sg
import scratchgen.functional as F


def _run(fn, arrays, dtype, device="cpu"):
    ts = [sg.tensor(a.astype(dtype), requires_grad=True, device=device) for a in arrays]
    out = fn(*ts)
    g = np.random.default_rng(9).standard_normal(out.shape).astype(dtype)
    out.backward(sg.tensor(g, device=device))
    return [out.numpy()] + [t.grad.numpy() for t in ts]


CASES = {
    "conv2d": (lambda x, w: F.conv2d(x, w, stride=2, padding=1), [(4, 8, 16, 16), (16, 8, 4, 4)]),
    "conv_transpose2d": (lambda x, w: F.conv_transpose2d(x, w, stride=2, padding=1),
                         [(4, 16, 8, 8), (16, 8, 4, 4)]),
    "conv2d_1x1": (lambda x, w, b: F.conv2d(x, w, b), [(3, 8, 5, 6), (4, 8, 1, 1), (4,)]),
    "conv_transpose2d_1x1": (lambda x, w, b: F.conv_transpose2d(x, w, b),
                             [(3, 8, 5, 6), (8, 4, 1, 1), (4,)]),
    "conv2d_reflect": (lambda x, w: F.conv2d(x, w, padding=3, padding_mode="reflect"),
                       [(2, 3, 12, 12), (4, 3, 7, 7)]),
    "max_pool2d": (lambda x: F.max_pool2d(x, 3, 2, 1), [(2, 3, 9, 9)]),
    "avg_pool2d": (lambda x: F.avg_pool2d(x, 2), [(2, 3, 8, 8)]),
    "bilinear": (lambda x: F.interpolate(x, scale_factor=2, mode="bilinear"), [(2, 3, 5, 5)]),
    "attention": (lambda q, k, v: F.scaled_dot_product_attention(q, k, v),
                  [(2, 64, 8), (2, 64, 8), (2, 64, 32)]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_float32_matches_float64(name, device):
    fn, shapes = CASES[name]
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s) for s in shapes]
    r64 = _run(fn, arrays, np.float64, device)
    r32 = _run(fn, arrays, np.float32, device)
    for a, b in zip(r32, r64):
        assert a.dtype == np.float32
        err = np.abs(a - b).max() / max(np.abs(b).max(), 1e-12)
        assert err < 1e-4, f"{name}: float32 relative error {err:.2e}"


def test_conv2d_matches_direct_sum():
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal((2, 3, 6, 5)), rng.standard_normal((4, 3, 3, 2)), rng.standard_normal(4)
    y = F.conv2d(sg.tensor(x), sg.tensor(w), sg.tensor(b), stride=(2, 1), padding=(1, 0)).numpy()
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (0, 0)))
    ref = np.zeros(y.shape)
    for i in range(y.shape[2]):
        for j in range(y.shape[3]):
            patch = xp[:, :, 2 * i:2 * i + 3, j:j + 2]
            ref[:, :, i, j] = np.einsum("nchw,ochw->no", patch, w) + b
    np.testing.assert_allclose(y, ref, rtol=1e-12)


def test_conv_transpose_is_the_adjoint_of_conv():
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((2, 3, 9, 9)), rng.standard_normal((5, 3, 4, 4))
    y = F.conv2d(sg.tensor(x), sg.tensor(w), stride=2, padding=1)
    g = rng.standard_normal(y.shape)
    back = F.conv_transpose2d(sg.tensor(g), sg.tensor(w), stride=2, padding=1, output_padding=1)
    assert back.shape == x.shape
    assert np.isclose((y.numpy() * g).sum(), (x * back.numpy()).sum(), rtol=1e-12)


def test_output_shapes_follow_pytorch():
    x = sg.zeros(1, 128, 7, 7)
    w = sg.zeros(128, 64, 4, 4)
    assert F.conv_transpose2d(x, w, stride=2, padding=1).shape == (1, 64, 14, 14)
    assert F.conv2d(sg.zeros(1, 1, 28, 28), sg.zeros(64, 1, 4, 4), stride=2, padding=1).shape \
        == (1, 64, 14, 14)
    assert F.max_pool2d(sg.zeros(1, 1, 7, 7), 2).shape == (1, 1, 3, 3)
    assert F.max_pool2d(sg.zeros(1, 1, 7, 7), 2, ceil_mode=True).shape == (1, 1, 4, 4)
    assert F.interpolate(sg.zeros(1, 1, 3, 5), scale_factor=2).shape == (1, 1, 6, 10)


def test_bad_arguments_name_the_shapes():
    x = sg.zeros(1, 3, 8, 8)
    with pytest.raises(ValueError, match=r"\(1, 3, 8, 8\).*3 channels.*\(4, 2, 3, 3\)"):
        F.conv2d(x, sg.zeros(4, 2, 3, 3))
    with pytest.raises(ValueError, match=r"kernel|larger|\(1, 3, 8, 8\)"):
        F.conv2d(x, sg.zeros(4, 3, 11, 11))
    with pytest.raises(ValueError, match="negative|padding"):
        F.conv2d(x, sg.zeros(4, 3, 3, 3), padding=-1)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\).*\(3, 8, 8\)"):
        F.conv2d(sg.zeros(3, 8, 8), sg.zeros(4, 3, 3, 3))
    with pytest.raises(ValueError, match="output_padding"):
        F.conv_transpose2d(x, sg.zeros(3, 2, 3, 3), stride=2, output_padding=2)
    with pytest.raises(ValueError, match=r"bias"):
        F.conv2d(x, sg.zeros(4, 3, 3, 3), sg.zeros(5))
    with pytest.raises(ValueError):
        F.pad2d(x, (8, 8, 0, 0), mode="reflect")
    with pytest.raises(ValueError):
        F.scaled_dot_product_attention(sg.zeros(2, 4, 3), sg.zeros(2, 5, 2), sg.zeros(2, 5, 3))


@pytest.mark.parametrize("transpose", [False, True])
def test_pointwise_convolutions_first_and_second_order(transpose):
    """1 x 1, stride 1, no padding takes the per-image product path in every direction (input,
    weight, and the weight gradient's own derivatives): gradient-checked to second order."""
    from scratchgen.testing import gradcheck, gradgradcheck

    rng = np.random.default_rng(3)
    x = sg.tensor(rng.standard_normal((2, 3, 3, 4)), requires_grad=True)
    w = sg.tensor(rng.standard_normal((3, 2, 1, 1) if transpose else (2, 3, 1, 1)),
                  requires_grad=True)
    b = sg.tensor(rng.standard_normal(2), requires_grad=True)
    fn = F.conv_transpose2d if transpose else F.conv2d
    gradcheck(fn, [x, w, b])
    gradgradcheck(fn, [x, w, b])


def test_forward_keeps_im2col_only_for_a_weight_gradient():
    """Conv2d keeps the forward's im2col matrix exactly when the weight needs a gradient
    (``needs_input_grad`` is known before the forward), and the gradients it gives are the
    ones computed without it."""
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((2, 3, 9, 8)), rng.standard_normal((4, 3, 4, 4))
    g = rng.standard_normal((2, 4, 4, 4))
    xt, wt = sg.tensor(x, requires_grad=True), sg.tensor(w, requires_grad=True)
    y = F.conv2d(xt, wt, stride=2, padding=1)
    assert y.grad_fn.columns is not None
    y.backward(sg.tensor(g))
    from scratchgen.kernels import conv as K
    np.testing.assert_array_equal(wt.grad.numpy(), K.conv2d_backward_weight(g, x, w.shape, 2, 1))
    np.testing.assert_array_equal(xt.grad.numpy(), K.conv2d_backward_input(g, w, x.shape, 2, 1))
    y = F.conv2d(sg.tensor(x, requires_grad=True), sg.tensor(w), stride=2, padding=1)
    assert y.grad_fn.columns is None   # only the input needs a gradient
    with sg.no_grad():
        assert F.conv2d(xt, wt, stride=2, padding=1).grad_fn is None


NP_PAD_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge",
                "circular": "wrap"}


@pytest.mark.parametrize("mode", sorted(NP_PAD_MODES))
@pytest.mark.parametrize("shape, widths", [((2, 5), (1, 3)), ((2, 3, 5), (2, 1)),
                                           ((2, 3, 4, 5), (1, 2, 3, 0)), ((3, 4, 5), (0, 4, 2, 1))])
def test_pad_is_torch_pad(mode, shape, widths, device):
    """F.pad(x, (left, right, top, bottom), mode) is np.pad of the last axes in reverse order
    (PyTorch's replicate/circular are NumPy's edge/wrap), and its gradient folds each padded
    copy back onto the element it copies."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)
    per_axis = [(0, 0)] * x.ndim
    for i in range(len(widths) // 2):
        per_axis[-1 - i] = (widths[2 * i], widths[2 * i + 1])
    kw = {"constant_values": 0.25} if mode == "constant" else {}
    expected = np.pad(x, per_axis, mode=NP_PAD_MODES[mode], **kw)
    xt = sg.tensor(x, requires_grad=True, device=device)
    y = F.pad(xt, widths, mode=mode, value=0.25)
    np.testing.assert_array_equal(y.numpy(), expected)
    # The adjoint: gx[i] sums gy over the output positions that copy x[i].
    index = np.pad(np.arange(x.size).reshape(shape), per_axis, mode=NP_PAD_MODES[mode],
                   **({"constant_values": -1} if mode == "constant" else {}))
    gy = rng.standard_normal(expected.shape)
    y.backward(sg.tensor(gy, device=device))
    keep = index >= 0
    gx = np.bincount(index[keep], weights=gy[keep], minlength=x.size).reshape(shape)
    np.testing.assert_allclose(xt.grad.numpy(), gx, rtol=1e-12, atol=1e-12)


def test_pad_constant_pads_any_number_of_axes_and_checks_arguments():
    x = sg.tensor(np.ones((2, 2, 2)))
    assert F.pad(x, (1, 0, 0, 1, 2, 0)).shape == (4, 3, 3)
    assert F.pad(x, (1, 1), value=3.0).numpy()[0, 0].tolist() == [3.0, 1.0, 1.0, 3.0]
    with pytest.raises(ValueError, match="mode"):
        F.pad(x, (1, 1), mode="mirror")
    with pytest.raises(ValueError, match="reflect.*\\(left, right\\)"):
        F.pad(x, (1, 1, 1, 1, 1, 1), mode="reflect")
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        F.pad(sg.tensor(np.ones(3)), (1, 1), mode="replicate")
    with pytest.raises(ValueError, match="reflect padding must be smaller"):
        F.pad(x, (2, 0), mode="reflect")
