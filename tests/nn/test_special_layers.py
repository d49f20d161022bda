"""Spectral norm, PixelCNN's masked convolution, SAGAN's attention block, conv layer plumbing."""
from __future__ import annotations

import numpy as np
import pytest

import scratchgen as sg
import scratchgen.functional as F
import scratchgen.nn as nn
import scratchgen.optim as optim


def _sigma_max(w, dim=0):
    if dim:
        w = np.moveaxis(w, dim, 0)
    return np.linalg.svd(w.reshape(w.shape[0], -1), compute_uv=False)[0]


def test_spectral_norm_structure_and_sigma_matches_svd():
    lin = nn.Linear(6, 5).to("float64")
    w0 = lin.weight
    m = nn.spectral_norm(lin)
    assert m.weight_orig is w0
    assert [n for n, _ in m.named_parameters()] == ["bias", "weight_orig"]
    assert sorted(m.state_dict()) == ["bias", "weight_orig", "weight_u", "weight_v"]
    x = sg.randn(3, 6, dtype="float64")
    for _ in range(60):  # one power iteration per training forward
        m(x)
    true = _sigma_max(w0.numpy())
    u, v = m.weight_u.numpy(), m.weight_v.numpy()
    assert abs(np.linalg.norm(u) - 1) < 1e-12 and abs(np.linalg.norm(v) - 1) < 1e-12
    np.testing.assert_allclose(u @ w0.numpy() @ v, true, rtol=1e-8)
    np.testing.assert_allclose(_sigma_max(m.weight.numpy()), 1.0, rtol=1e-8)
    np.testing.assert_allclose(m(x).numpy(), x.numpy() @ (w0.numpy() / true).T + m.bias.numpy(),
                               rtol=1e-8)
    with pytest.raises(RuntimeError, match="already"):
        nn.spectral_norm(m)


def test_spectral_norm_eval_does_not_iterate_and_gradients_reach_weight_orig():
    m = nn.spectral_norm(nn.Linear(4, 3))
    x = sg.randn(2, 4)
    m(x)
    m.eval()
    u = m.weight_u.data.copy()
    m(x)
    np.testing.assert_array_equal(m.weight_u.data, u)
    m.train()
    opt = optim.SGD(m.parameters(), lr=0.1)
    m(x).sum().backward()
    assert m.weight_orig.grad is not None and m.weight_orig.grad.shape == (3, 4)
    opt.step()
    nn.remove_spectral_norm(m)
    assert isinstance(m.weight, nn.Parameter) and "weight_u" not in m.state_dict()
    assert len(m._forward_pre_hooks) == 0


def test_spectral_norm_conv_and_transposed_conv_dim():
    conv = nn.spectral_norm(nn.Conv2d(3, 4, 3).to("float64"))
    hook = next(iter(conv._forward_pre_hooks.values()))
    hook.power_iteration(conv, 200)
    conv(sg.randn(1, 3, 4, 4, dtype="float64"))
    np.testing.assert_allclose(_sigma_max(conv.weight.numpy()), 1.0, rtol=1e-6)
    convt = nn.spectral_norm(nn.ConvTranspose2d(3, 5, 3).to("float64"))
    assert convt.weight_u.shape == (5,) and convt.weight_v.shape == (3 * 9,)
    hook = next(iter(convt._forward_pre_hooks.values()))
    hook.power_iteration(convt, 200)
    convt(sg.randn(1, 3, 2, 2, dtype="float64"))
    np.testing.assert_allclose(_sigma_max(convt.weight.numpy(), dim=1), 1.0, rtol=1e-6)


def test_spectral_norm_survives_to_float64_and_state_dict_round_trip():
    a = nn.spectral_norm(nn.Linear(3, 3))
    a(sg.randn(2, 3))
    a.to("float64")
    assert a.weight_u.dtype == np.float64
    y = a(sg.randn(2, 3, dtype="float64"))
    assert y.dtype == np.float64
    b = nn.spectral_norm(nn.Linear(3, 3)).to("float64")
    b.load_state_dict(a.state_dict())
    a.eval(), b.eval()
    x = sg.randn(2, 3, dtype="float64")
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())


@pytest.mark.parametrize("mask_type", ["A", "B"])
def test_masked_conv_mask_and_zero_gradients(mask_type):
    conv = nn.MaskedConv2d(mask_type, 2, 3, 5, padding=2)
    mask = conv.mask.numpy()[0, 0]
    expected = np.ones((5, 5))
    expected[2, 2 + (mask_type == "B"):] = 0
    expected[3:] = 0
    np.testing.assert_array_equal(mask, expected)
    assert "mask" not in conv.state_dict()
    conv(sg.randn(1, 2, 6, 6)).sum().backward()
    g = conv.weight.grad.numpy()
    assert np.all(g[:, :, expected == 0] == 0) and np.any(g[:, :, expected == 1] != 0)
    assert repr(conv).startswith(f"MaskedConv2d('{mask_type}', 2, 3")


def test_pixelcnn_stack_is_causal():
    """Output pixel i of a type-A layer followed by type-B layers depends only on input pixels
    strictly before i in raster order: the gradient w.r.t. pixels at or after i is exactly 0."""
    net = nn.Sequential(nn.MaskedConv2d("A", 1, 4, 3, padding=1), nn.ReLU(),
                        nn.MaskedConv2d("B", 4, 4, 3, padding=1), nn.ReLU(),
                        nn.MaskedConv2d("B", 4, 1, 1)).to("float64")
    h = w = 5
    rng = np.random.default_rng(0)
    x = sg.tensor(rng.normal(size=(1, 1, h, w)), requires_grad=True)
    out = net(x)
    order = np.arange(h * w).reshape(h, w)
    for i in range(h * w):
        r, c = divmod(i, w)
        (g,) = sg.grad(out[0, 0, r, c], x, retain_graph=True)
        g = g.numpy()[0, 0]
        assert np.all(g[order >= i] == 0), f"pixel {i} sees the future"
        if i >= 1:
            assert np.any(g[order < i] != 0)


def test_self_attention_is_identity_at_init_and_learns_gamma():
    att = nn.SelfAttention2d(16)
    assert att.gamma.shape == (1,) and att.gamma.item() == 0.0
    assert att.f.out_channels == 2 and att.g.out_channels == 2 and att.h.out_channels == 16
    x = sg.randn(2, 16, 3, 4)
    np.testing.assert_array_equal(att(x).numpy(), x.numpy())
    att(x).sum().backward()
    assert att.gamma.grad is not None and att.gamma.grad.item() != 0.0


def test_self_attention_matches_numpy():
    att = nn.SelfAttention2d(8).to("float64")
    att.gamma.data = np.array([0.5])
    x = np.random.default_rng(1).normal(size=(2, 8, 2, 3))
    y = att(sg.tensor(x)).numpy()

    def conv1x1(m, a):
        return np.einsum("oc,nchw->nohw", m.weight.numpy()[:, :, 0, 0], a) + \
            m.bias.numpy()[None, :, None, None]

    f, g, hh = (conv1x1(m, x).reshape(2, -1, 6) for m in (att.f, att.g, att.h))
    s = np.einsum("nci,ncj->nji", f, g)  # s[j, i] = f(x_i) . g(x_j)
    beta = np.exp(s - s.max(-1, keepdims=True))
    beta /= beta.sum(-1, keepdims=True)
    o = np.einsum("nji,nci->ncj", beta, hh).reshape(x.shape)
    np.testing.assert_allclose(y, 0.5 * o + x, rtol=1e-10)


def test_conv_padding_modes_and_arguments():
    x = sg.randn(1, 2, 5, 5, dtype="float64")
    conv = nn.Conv2d(2, 3, 3, padding=1, padding_mode="reflect").to("float64")
    plain = nn.Conv2d(2, 3, 3).to("float64")
    plain.load_state_dict(conv.state_dict())
    np.testing.assert_allclose(conv(x).numpy(),
                               plain(F.pad2d(x, (1, 1, 1, 1), mode="reflect")).numpy(),
                               rtol=1e-12)
    assert nn.ConvTranspose2d(4, 2, 4, 2, 1)(sg.randn(1, 4, 3, 3)).shape == (1, 2, 6, 6)
    for k, d in ((3, 1), (4, 1), (2, 3)):
        same = nn.Conv2d(2, 3, k, padding="same", dilation=d, padding_mode="replicate")
        assert same(x.float()).shape == (1, 3, 5, 5)
    assert "padding='same'" in repr(same)
    assert nn.Conv2d(2, 3, 3, padding="valid")(x.float()).shape == (1, 3, 3, 3)
    with pytest.raises(ValueError, match="stride 1"):
        nn.Conv2d(2, 3, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="padding_mode"):
        nn.Conv2d(1, 1, 3, padding_mode="mirror")
    with pytest.raises(NotImplementedError, match="groups"):
        nn.Conv2d(2, 2, 3, groups=2)
    with pytest.raises(ValueError, match="mask_type"):
        nn.MaskedConv2d("C", 1, 1, 3)


def test_layers_shapes_and_modes():
    x = sg.randn(2, 3, 8, 8)
    assert nn.MaxPool2d(2)(x).shape == (2, 3, 4, 4)
    assert nn.AvgPool2d(2, stride=1)(x).shape == (2, 3, 7, 7)
    assert nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)(x).shape == \
        (2, 3, 16, 16)
    assert nn.ReflectionPad2d(2)(x).shape == (2, 3, 12, 12)
    assert nn.Unflatten(1, (3, 64))(nn.Flatten()(x)).shape == (2, 3, 64)
    with pytest.raises(ValueError, match="exactly one"):
        nn.Upsample()
