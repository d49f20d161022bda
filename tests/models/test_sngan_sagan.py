"""SNGAN and SAGAN: shapes for 28- and 32-pixel images, spectral normalisation of every weight
it should cover (largest singular value 1, by numpy's SVD), the projection term against a
direct computation, the self-attention block against its equations and its placement, argument
errors, end-to-end float64 gradient checks of the hinge losses, and a few training steps with
the published settings.

Gradient checks and spectral norm. In training mode every forward of a spectrally normalised
layer first moves its power-iteration vectors u, v, so two evaluations at the same weights
differ; the checks switch those layers (only them) to evaluation mode, which keeps u, v fixed
while W / sigma(W) stays differentiable in W. Batch norm stays in training mode (batch
statistics), so its gradient path is checked too.
"""
from __future__ import annotations

import numpy as np
import pytest

import scratchgen as sg
import scratchgen.nn as nn
from scratchgen.losses import gan
from scratchgen.models import sagan, sngan
from scratchgen.models.gan_training import GANTrainStep
from scratchgen.models.sagan import (
    SADiscriminator, SAGenerator, SelfAttention, discriminator_resolutions,
    generator_resolutions,
)
from scratchgen.models.sngan import SNDiscriminator, SNGenerator
from scratchgen.nn.spectral_norm import SpectralNorm
from scratchgen.testing import gradcheck

ARCHS = ["cnn", "resnet"]


def _t(a, dtype=np.float64) -> sg.Tensor:
    return sg.tensor(np.asarray(a, dtype=dtype))


def _labels(a) -> sg.Tensor:
    return sg.tensor(np.asarray(a, dtype=np.int64))


def _sn_hook(m: nn.Module) -> SpectralNorm | None:
    for hook in m._forward_pre_hooks.values():
        if isinstance(hook, SpectralNorm):
            return hook
    return None


def _weight_layers(net: nn.Module, embeddings: bool):
    """The layers with a weight matrix: convolutions, linear layers and (if asked) embeddings
    other than conditional batch norm's gains and biases."""
    cbn = {id(e) for m in net.modules() if isinstance(m, nn.ConditionalBatchNorm2d)
           for e in (m.gamma, m.beta)}
    kinds = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear) + ((nn.Embedding,) if embeddings else ())
    return [m for m in net.modules() if isinstance(m, kinds) and id(m) not in cbn]


def _top_singular_value(layer: nn.Module) -> float:
    hook = _sn_hook(layer)
    w = np.moveaxis(layer.weight.numpy(), hook.dim, 0)
    return float(np.linalg.svd(w.reshape(w.shape[0], -1), compute_uv=False)[0])


def _fix_power_iteration(*nets: nn.Module) -> None:
    """Spectrally normalised layers to evaluation mode: u, v stay put, W / sigma(W) is a
    deterministic, differentiable function of W."""
    for net in nets:
        for m in net.modules():
            if _sn_hook(m) is not None:
                m.eval()


def _call(net, inp, y):
    return net(inp) if y is None else net(inp, y)


# ---- shapes --------------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("size", [28, 32])
@pytest.mark.parametrize("num_classes", [None, 10])
def test_sngan_shapes(arch, size, num_classes):
    G = SNGenerator(z_dim=8, image_size=size, channels=3, width=4, num_classes=num_classes,
                    arch=arch)
    D = SNDiscriminator(image_size=size, channels=3, width=4, num_classes=num_classes,
                        arch=arch)
    y = None if num_classes is None else _labels([1, 9, 0])
    x = _call(G, sg.randn(3, 8), y)
    assert x.shape == (3, 3, size, size)
    assert np.all(np.abs(x.numpy()) <= 1.0)
    assert _call(D, x, y).shape == (3,)
    assert G.z_dim == 8 and G.num_classes == num_classes


@pytest.mark.parametrize("size, resolution", [(28, 14), (32, 16)])
@pytest.mark.parametrize("num_classes", [None, 10])
def test_sagan_shapes(size, resolution, num_classes):
    G = SAGenerator(z_dim=8, image_size=size, channels=1, width=8, num_classes=num_classes,
                    attention_resolution=resolution)
    D = SADiscriminator(image_size=size, channels=1, width=8, num_classes=num_classes,
                        attention_resolution=resolution)
    y = None if num_classes is None else _labels([4, 2])
    x = _call(G, sg.randn(2, 8), y)
    assert x.shape == (2, 1, size, size)
    assert np.all(np.abs(x.numpy()) <= 1.0)
    assert _call(D, x, y).shape == (2,)


def test_64_pixel_images():
    for arch in ARCHS:
        x = SNGenerator(z_dim=4, image_size=64, width=2, arch=arch)(sg.randn(2, 4))
        assert x.shape == (2, 1, 64, 64)
        assert SNDiscriminator(image_size=64, width=2, arch=arch)(x).shape == (2,)
    x = SAGenerator(z_dim=4, image_size=64, width=8, attention_resolution=32)(sg.randn(2, 4))
    assert SADiscriminator(image_size=64, width=8, attention_resolution=32)(x).shape == (2,)


def test_feature_sizes():
    assert sngan.feature_sizes(32) == (4, 3)      # the paper's M_g = 4 for CIFAR-10
    assert sngan.feature_sizes(48) == (6, 3)      # and 6 for STL-10 (Table 3)
    assert sngan.feature_sizes(28) == (7, 2)
    assert generator_resolutions(32) == [8, 16, 32]
    assert generator_resolutions(28) == [14, 28]
    assert discriminator_resolutions(32) == [16, 8]
    assert discriminator_resolutions(28) == [14, 7]


# ---- argument errors -----------------------------------------------------------------------------

@pytest.mark.parametrize("size", [30, 33, 0, -8, "32", 32.0, True])
def test_bad_image_size(size):
    for make in (lambda: SNGenerator(image_size=size, width=2),
                 lambda: SNDiscriminator(image_size=size, width=2),
                 lambda: SAGenerator(image_size=size, width=8),
                 lambda: SADiscriminator(image_size=size, width=8)):
        with pytest.raises(ValueError, match="image_size"):
            make()


def test_bad_arguments():
    with pytest.raises(ValueError, match="arch"):
        SNGenerator(arch="mlp")
    with pytest.raises(ValueError, match="width"):
        SNDiscriminator(width=0)
    with pytest.raises(ValueError, match="num_classes"):
        SNGenerator(num_classes=0)
    with pytest.raises(ValueError, match="z_dim"):
        SAGenerator(z_dim=2.5)


def test_bad_inputs():
    G = SNGenerator(z_dim=4, image_size=8, width=2, num_classes=3)
    D = SNDiscriminator(image_size=8, width=2, num_classes=3)
    z, y = sg.randn(2, 4), _labels([0, 2])
    with pytest.raises(ValueError, match=r"\(N, 4\), got \(2, 5\)"):
        G(sg.randn(2, 5), y)
    with pytest.raises(ValueError, match="needs labels"):
        G(z)
    with pytest.raises(ValueError, match=r"range \[0, 3\]"):
        G(z, _labels([0, 3]))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        G(z, _labels([0, 1, 2]))
    with pytest.raises(ValueError, match="integers"):
        G(z, _t([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"\(N, 1, 8, 8\), got \(2, 1, 9, 9\)"):
        D(sg.randn(2, 1, 9, 9), y)
    with pytest.raises(ValueError, match="unconditional"):
        SNDiscriminator(image_size=8, width=2)(sg.randn(2, 1, 8, 8), y)


def test_invalid_attention_resolution_names_the_valid_ones():
    with pytest.raises(ValueError, match="generator.*choose one of 14, 28"):
        SAGenerator(image_size=28, width=8, attention_resolution=16)
    with pytest.raises(ValueError, match="discriminator.*choose one of 16, 8"):
        SADiscriminator(image_size=32, width=8, attention_resolution=4)
    with pytest.raises(ValueError, match="choose one of 8, 16, 32"):
        SAGenerator(image_size=32, width=8, attention_resolution=4)


# ---- spectral normalisation ----------------------------------------------------------------------

def _assert_spectrally_normalised(net: nn.Module, inputs, embeddings: bool) -> None:
    layers = _weight_layers(net, embeddings)
    assert layers and all(_sn_hook(m) is not None for m in layers)
    net.train()
    for forwards in range(1, 301):     # one power iteration per training-mode forward
        net(*inputs)
        s = np.array([_top_singular_value(m) for m in layers])
        # sigma's estimate u^T W v never exceeds the true sigma, so W / estimate has s >= 1
        assert np.all(s >= 1.0 - 1e-6), s
        if np.all(s < 1.0 + 1e-3):
            break
    assert np.all(s < 1.0 + 1e-3), (forwards, s)


@pytest.mark.parametrize("arch", ARCHS)
def test_sngan_discriminator_is_spectrally_normalised(arch):
    D = SNDiscriminator(image_size=8, channels=2, width=4, num_classes=5, arch=arch)
    _assert_spectrally_normalised(D, (sg.randn(3, 2, 8, 8), _labels([0, 4, 2])), True)
    # and the generator is not (SNGAN normalises the discriminator only)
    G = SNGenerator(z_dim=4, image_size=8, width=4, num_classes=5, arch=arch)
    assert all(_sn_hook(m) is None for m in G.modules())


def test_sagan_both_networks_are_spectrally_normalised():
    G = SAGenerator(z_dim=4, image_size=8, width=8, num_classes=5, attention_resolution=4)
    D = SADiscriminator(image_size=8, width=8, num_classes=5, attention_resolution=4)
    y = _labels([0, 4, 2])
    _assert_spectrally_normalised(G, (sg.randn(3, 4), y), False)
    _assert_spectrally_normalised(D, (sg.randn(3, 1, 8, 8), y), True)
    # the attention block's four 1x1 convolutions are among them
    assert all(_sn_hook(c) is not None for c in (G.attention.f, G.attention.g, G.attention.h,
                                                  G.attention.v))


# ---- projection discriminator --------------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda: SNDiscriminator(image_size=8, channels=2, width=3, num_classes=4, arch="cnn"),
    lambda: SNDiscriminator(image_size=8, channels=2, width=3, num_classes=4, arch="resnet"),
    lambda: SADiscriminator(image_size=8, channels=2, width=8, num_classes=4,
                            attention_resolution=4),
])
def test_projection_term(make):
    """logit(x, y) = psi(phi(x)) + <v_y, phi(x)>: changing y from y0 to y1 changes the logit
    by exactly <v_y1 - v_y0, phi(x)>."""
    D = make().to("float64")
    x = _t(np.random.default_rng(0).standard_normal((3, 2, 8, 8)))
    y0, y1 = _labels([0, 1, 3]), _labels([2, 1, 0])
    D(x, y0)                       # one training-mode step of the power iterations
    D.eval()                       # then W / sigma fixed
    l0, l1 = D(x, y0).numpy(), D(x, y1).numpy()
    phi = D.features(x).numpy()
    V = D.embed.weight.numpy()     # the spectrally normalised embedding W / sigma
    np.testing.assert_allclose(l1 - l0, ((V[[2, 1, 0]] - V[[0, 1, 3]]) * phi).sum(axis=1),
                               rtol=1e-10, atol=1e-12)
    assert l1[1] == l0[1]
    # and the whole logit, with psi the (normalised) linear layer
    w = D.linear.weight.numpy()
    b = D.linear.bias.numpy() if D.linear.bias is not None else 0.0
    np.testing.assert_allclose(l0, phi @ w[0] + b + (V[[0, 1, 3]] * phi).sum(axis=1),
                               rtol=1e-10, atol=1e-12)


# ---- self-attention ------------------------------------------------------------------------------

def test_self_attention_matches_the_equations():
    sg.manual_seed(1)
    att = SelfAttention(16).to("float64")
    x = _t(np.random.default_rng(1).standard_normal((2, 16, 3, 4)))
    np.testing.assert_array_equal(att(x).numpy(), x.numpy())     # gamma = 0: the identity
    att.gamma.data[...] = 0.7
    att.eval()
    out = att(x).numpy()

    def w(conv):
        return conv.weight.numpy()[:, :, 0, 0]                   # (out, in)

    for n in range(2):
        X = x.numpy()[n].reshape(16, 12)                           # columns x_i
        f, g, h = w(att.f) @ X, w(att.g) @ X, w(att.h) @ X         # (2, 12) each
        s = f.T @ g                                                # s[i, j] = f(x_i)^T g(x_j)
        beta = np.exp(s - s.max(axis=0)) / np.exp(s - s.max(axis=0)).sum(axis=0)  # over i
        o = w(att.v) @ (h @ beta)                                  # o_j = v(sum_i b_ji h(x_i))
        np.testing.assert_allclose(out[n].reshape(16, 12), 0.7 * o + X, rtol=1e-10, atol=1e-12)


def _attention_inputs(net) -> list:
    seen: list = []
    net.attention.register_forward_hook(lambda m, args, out: seen.append(args[0].shape))
    return seen


@pytest.mark.parametrize("size, resolution", [(32, 8), (32, 16), (32, 32), (28, 14), (28, 28)])
def test_generator_attention_at_the_requested_resolution(size, resolution):
    G = SAGenerator(z_dim=4, image_size=size, width=8, attention_resolution=resolution)
    seen = _attention_inputs(G)
    G(sg.randn(2, 4))
    assert seen == [(2, 8, resolution, resolution)]


@pytest.mark.parametrize("size, resolution", [(32, 16), (32, 8), (28, 14), (28, 7)])
def test_discriminator_attention_at_the_requested_resolution(size, resolution):
    D = SADiscriminator(image_size=size, width=8, attention_resolution=resolution)
    seen = _attention_inputs(D)
    D(sg.randn(2, 1, size, size))
    assert seen == [(2, 8, resolution, resolution)]


# ---- end-to-end gradient checks of the hinge losses ----------------------------------------------

def _check(loss_fn, params) -> None:
    gradcheck(lambda *ps: loss_fn(), params, mode="projection", n_projections=4,
              atol=1e-6, rtol=1e-5)


def _tiny_pair(model: str, arch: str, num_classes):
    sg.manual_seed(5)
    if model == "sngan":
        G = SNGenerator(z_dim=3, image_size=8, channels=2, width=2, num_classes=num_classes,
                        arch=arch)
        D = SNDiscriminator(image_size=8, channels=2, width=2, num_classes=num_classes,
                            arch=arch)
    else:
        G = SAGenerator(z_dim=3, image_size=8, channels=2, width=8, num_classes=num_classes,
                        attention_resolution=4)
        D = SADiscriminator(image_size=8, channels=2, width=8, num_classes=num_classes,
                            attention_resolution=4)
        G.attention.gamma.data[...] = 0.6      # let the attention path carry gradient
        D.attention.gamma.data[...] = -0.4
    G.to("float64")
    D.to("float64")
    rng = np.random.default_rng(6)
    for net in (G, D):
        # biases start at 0, which puts a ReLU exactly at its kink wherever a bias meets an
        # all-zero window; move them off it
        for name, p in net.named_parameters():
            if name.endswith("bias"):
                p.data[...] = rng.normal(0.0, 0.1, p.shape)
    y = None if num_classes is None else _labels(np.arange(4) % num_classes)
    with sg.no_grad():
        for _ in range(5):         # a few power iterations, so that sigma's estimate is sane
            _call(D, _call(G, _t(rng.standard_normal((4, 3))), y), y)
    _fix_power_iteration(G, D)
    return G, D


@pytest.mark.parametrize("model, arch, num_classes", [
    ("sngan", "cnn", None), ("sngan", "cnn", 3), ("sngan", "resnet", None),
    ("sngan", "resnet", 3), ("sagan", None, None), ("sagan", None, 3),
])
def test_hinge_losses_gradcheck(model, arch, num_classes):
    G, D = _tiny_pair(model, arch, num_classes)
    defaults = sngan.DEFAULTS if model == "sngan" else sagan.DEFAULTS
    step = GANTrainStep(G, D, **defaults)
    rng = np.random.default_rng(7)
    x = _t(rng.uniform(-1, 1, (4, 2, 8, 8)))
    z = _t(rng.standard_normal((4, 3))).requires_grad_(True)
    y = None if num_classes is None else _labels([0, 2, 1, 2])

    # L_D = E[relu(1 - D(x))] + E[relu(1 + D(G(z)))], w.r.t. every weight of D
    fake = _call(G, z, y).detach()
    real_logits, fake_logits = _call(D, x, y).numpy(), _call(D, fake, y).numpy()
    assert np.all(np.abs(real_logits - 1) > 1e-3) and np.all(np.abs(fake_logits + 1) > 1e-3)
    _check(lambda: step.discriminator_loss(x, y, fake, y)[0], list(D.parameters()))

    # L_G = -E[D(G(z))], w.r.t. every weight of G and the noise
    _check(lambda: gan.generator_loss(_call(D, _call(G, z, y), y), "hinge"),
           list(G.parameters()) + [z])


# ---- training with the published settings --------------------------------------------------------

def test_defaults():
    assert sngan.DEFAULTS == {"d_loss": "hinge", "g_loss": "hinge", "lr_g": 2e-4,
                              "lr_d": 2e-4, "betas": (0.0, 0.9), "n_dis": 5}
    assert sagan.DEFAULTS == {"d_loss": "hinge", "g_loss": "hinge", "lr_g": 1e-4,
                              "lr_d": 4e-4, "betas": (0.0, 0.9), "n_dis": 1}


def _snapshot(net) -> dict:
    return {name: p.data.copy() for name, p in net.named_parameters()}


def _unchanged(net, before) -> list[str]:
    return [name for name, p in net.named_parameters() if np.array_equal(before[name], p.data)]


@pytest.mark.parametrize("model, arch", [("sngan", "cnn"), ("sngan", "resnet"), ("sagan", None)])
def test_train_steps_with_defaults(model, arch):
    sg.manual_seed(2)
    if model == "sngan":
        G = SNGenerator(z_dim=4, image_size=8, width=4, num_classes=3, arch=arch)
        D = SNDiscriminator(image_size=8, width=4, num_classes=3, arch=arch)
        defaults = sngan.DEFAULTS
    else:
        G = SAGenerator(z_dim=4, image_size=8, width=8, num_classes=3, attention_resolution=4)
        D = SADiscriminator(image_size=8, width=8, num_classes=3, attention_resolution=4)
        defaults = sagan.DEFAULTS
    step = GANTrainStep(G, D, **defaults)
    rng = np.random.default_rng(3)
    batch = (rng.uniform(-1, 1, (6, 1, 8, 8)).astype(np.float32), rng.integers(0, 3, 6))
    g0, d0 = _snapshot(G), _snapshot(D)
    n_dis = defaults["n_dis"]
    for _ in range(n_dis - 1):         # D updates only, until the n_dis-th
        assert np.isfinite(step(batch)["loss_d"])
        assert len(_unchanged(G, g0)) == len(g0)
    out = step(batch)                  # the n_dis-th D update, then one G update
    assert np.isfinite(out["loss_d"]) and np.isfinite(out["loss_g"])
    assert len(_unchanged(G, g0)) < len(g0)
    # A second round: the attention convolutions get no gradient while gamma = 0, so they
    # move from the second update on.
    for _ in range(n_dis):
        out = step(batch)
    assert np.isfinite(out["loss_d"]) and np.isfinite(out["loss_g"])
    assert _unchanged(G, g0) == []
    # The CNN discriminator's output bias b has dL_D/db = -(share of real margins active)
    # + (share of fake margins active) under the hinge loss: 0 while every margin is active.
    assert set(_unchanged(D, d0)) <= {"linear.bias"}
