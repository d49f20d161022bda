"""Float64 gradient checks of every layer, w.r.t. its input and its parameters, in training and
evaluation mode; second derivatives too (gradient penalties differentiate through them)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import scratchgen as sg
import scratchgen.functional as F
import scratchgen.nn as nn
from scratchgen.nn import functional_norm as FN
from scratchgen.testing import gradcheck, gradgradcheck


def _input(shape, seed=1, low=-1.5, high=1.5):
    rng = np.random.default_rng(seed)
    return sg.tensor(rng.uniform(low, high, shape), requires_grad=True)


def check_module(module, x, modes=("train", "eval"), second=True, reseed=False, **kw):
    """gradcheck (and gradgradcheck) of module(x) w.r.t. x and every parameter."""
    module.to("float64")
    params = [p for p in module.parameters()]

    def fn(x, *ps):
        if reseed:  # dropout: the same mask at every evaluation
            sg.manual_seed(123)
        return module(x)

    for mode in modes:
        module.train(mode == "train")
        gradcheck(fn, [x] + params, **kw)
        if second:
            gradgradcheck(fn, [x] + params, **kw)


def _perturb(module, seed=0, scale=0.3):
    """Move parameters away from their structured initial values (gamma = 1, beta = 0)."""
    rng = np.random.default_rng(seed)
    for p in module.parameters():
        p.data = p.data + scale * rng.standard_normal(p.shape).astype(p.dtype)
    return module


def test_linear():
    check_module(nn.Linear(3, 2), _input((4, 3)))
    check_module(nn.Linear(3, 2, bias=False), _input((2, 5, 3)), modes=("train",))


def test_embedding():
    emb = nn.Embedding(5, 3).to("float64")
    idx = np.array([[0, 4], [4, 2]])
    gradcheck(lambda w: emb(idx), [emb.weight])
    gradgradcheck(lambda w: emb(idx) ** 2, [emb.weight])


@pytest.mark.parametrize("layer", [
    nn.Tanh(), nn.Sigmoid(), nn.ELU(), nn.Softplus(beta=2.0), nn.LeakyReLU(0.2), nn.ReLU(),
    nn.Identity(), nn.Flatten(), nn.Unflatten(1, (2, 3)),
], ids=lambda m: type(m).__name__)
def test_activation_and_shape_layers(layer):
    x = _input((2, 6))
    x.data = np.where(np.abs(x.data) < 0.1, 0.3, x.data)  # away from the kinks at 0
    check_module(layer, x, modes=("train",))


def test_dropout_train_and_eval():
    check_module(nn.Dropout(0.3), _input((4, 5)), reseed=True)
    d = nn.Dropout(0.5).eval()
    x = sg.randn(3, 3)
    assert d(x) is x


def test_batchnorm1d():
    bn = _perturb(nn.BatchNorm1d(3))
    check_module(bn, _input((5, 3)))
    bn3 = _perturb(nn.BatchNorm1d(2))
    check_module(bn3, _input((3, 2, 4)), modes=("train",), second=False)


def test_batchnorm2d_and_without_running_stats():
    bn = _perturb(nn.BatchNorm2d(2))
    bn.running_var.data = np.array([0.5, 2.0])
    check_module(bn, _input((3, 2, 2, 2)))
    free = nn.BatchNorm2d(2, affine=False, track_running_stats=False)
    check_module(free, _input((2, 2, 2, 3)))


def test_conditional_batchnorm2d():
    cbn = _perturb(nn.ConditionalBatchNorm2d(2, num_classes=3)).to("float64")
    y = np.array([0, 2, 2])
    params = list(cbn.parameters())
    x = _input((3, 2, 2, 2))
    for mode in (True, False):
        cbn.train(mode)
        gradcheck(lambda x, *ps: cbn(x, y), [x] + params)
        gradgradcheck(lambda x, *ps: cbn(x, y), [x] + params)


def test_instance_layer_group_norm():
    check_module(nn.InstanceNorm2d(2), _input((2, 2, 2, 3)))
    check_module(_perturb(nn.InstanceNorm2d(2, affine=True, track_running_stats=True)),
                 _input((2, 2, 3, 2)))
    check_module(_perturb(nn.LayerNorm(4)), _input((3, 4)))
    check_module(_perturb(nn.LayerNorm((2, 3))), _input((2, 2, 3)), modes=("train",))
    check_module(_perturb(nn.GroupNorm(2, 4)), _input((2, 4, 1, 3)))


def test_conv2d_all_padding_modes():
    for mode in ("zeros", "reflect", "replicate", "circular"):
        conv = nn.Conv2d(2, 2, 3, stride=1, padding=1, padding_mode=mode)
        check_module(conv, _input((1, 2, 3, 3)), modes=("train",), second=(mode == "reflect"))
    conv = nn.Conv2d(1, 2, (2, 3), stride=2, padding=(1, 0), dilation=(1, 1), bias=False)
    check_module(conv, _input((2, 1, 4, 5)), modes=("train",), second=False)
    conv = nn.Conv2d(1, 1, 2, padding="same", padding_mode="reflect")  # asymmetric padding
    check_module(conv, _input((1, 1, 3, 4)), modes=("train",), second=False)


def test_conv_transpose2d():
    check_module(nn.ConvTranspose2d(2, 1, 3, stride=2, padding=1, output_padding=1),
                 _input((1, 2, 2, 2)), modes=("train",))


def test_masked_conv2d():
    check_module(nn.MaskedConv2d("B", 1, 2, 3, padding=1), _input((1, 1, 3, 3)),
                 modes=("train",))


def test_pooling_resampling_padding():
    x = _input((1, 2, 4, 4))
    rng = np.random.default_rng(5)  # distinct values: no ties inside a max-pool window
    x.data = rng.permutation(np.linspace(-2, 2, x.size)).reshape(x.shape)
    check_module(nn.MaxPool2d(2), x, modes=("train",))
    check_module(nn.AvgPool2d(3, stride=1, padding=1), _input((1, 1, 3, 3)), modes=("train",))
    check_module(nn.Upsample(scale_factor=2), _input((1, 1, 2, 2)), modes=("train",))
    check_module(nn.Upsample(size=(3, 4), mode="bilinear", align_corners=True),
                 _input((1, 1, 2, 2)), modes=("train",))
    check_module(nn.ReflectionPad2d((1, 0, 2, 1)), _input((1, 1, 3, 3)), modes=("train",))


def test_self_attention2d():
    att = nn.SelfAttention2d(8)
    att.gamma.data = np.array([0.7], np.float32)  # at gamma = 0 the attention path is invisible
    check_module(att, _input((1, 8, 2, 2)), modes=("train",), atol=1e-5, rtol=1e-3)


def test_spectral_norm_layers_train_and_eval():
    """Training mode runs one power iteration per forward (without gradient): once u, v have
    converged, sigma is stationary in them, so the gradient treating them as constants is the
    true derivative. Restoring u, v before each evaluation keeps the function deterministic."""
    for layer, x in ((nn.Linear(4, 3), _input((2, 4))),
                     (nn.Conv2d(2, 3, 2), _input((1, 2, 3, 3)))):
        m = nn.spectral_norm(layer.to("float64"))
        hook = next(iter(m._forward_pre_hooks.values()))
        hook.power_iteration(m, 500)
        u0, v0 = m.weight_u.data.copy(), m.weight_v.data.copy()
        params = list(m.parameters())

        def fn(x, *ps):
            m.weight_u.data, m.weight_v.data = u0.copy(), v0.copy()
            return m(x)

        m.train()
        gradcheck(fn, [x] + params)
        m.eval()  # no iteration: u, v are constants, so second derivatives are exact too
        gradcheck(fn, [x] + params)
        gradgradcheck(fn, [x] + params)


@settings(max_examples=6, deadline=None)
@given(st.integers(2, 3), st.sampled_from([(2, 1), (4, 2), (4, 4)]),
       st.sampled_from([(), (2,), (1, 3)]), st.integers(0, 2 ** 16))
def test_functional_norms_property(n, channels_groups, spatial, seed):
    """batch / instance / group / layer norm over random shapes, first and second order."""
    c, groups = channels_groups
    rng = np.random.default_rng(seed)
    x = sg.tensor(rng.normal(size=(n, c) + spatial), requires_grad=True)
    w = sg.tensor(rng.normal(size=c), requires_grad=True)
    b = sg.tensor(rng.normal(size=c), requires_grad=True)
    rm, rv = sg.tensor(rng.normal(size=c)), sg.tensor(rng.uniform(0.5, 2, size=c))
    fns = [lambda x, w, b: FN.batch_norm(x, None, None, w, b, training=True),
           lambda x, w, b: FN.batch_norm(x, rm, rv, w, b, training=False),
           lambda x, w, b: FN.group_norm(x, groups, w, b),
           lambda x, w, b: FN.layer_norm(x, x.shape[1:], None, None) * F.reshape(
               w, (1, c) + (1,) * len(spatial))]
    if spatial and int(np.prod(spatial)) > 1:
        fns.append(lambda x, w, b: FN.instance_norm(x, weight=w, bias=b))
    for fn in fns:
        gradcheck(fn, [x, w, b])
        gradgradcheck(fn, [x, w, b])


def test_gradient_penalty_through_a_critic():
    """WGAN-GP's (||grad_x D(x)|| - 1)^2 differentiated w.r.t. the critic's parameters: needs
    second derivatives of every layer of the critic."""
    critic = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.LeakyReLU(0.2),
                           nn.spectral_norm(nn.Linear(4, 4)), nn.Tanh(), nn.Linear(4, 1))
    critic.to("float64").eval()
    _perturb(critic[1])
    x = _input((2, 3), seed=3)
    params = list(critic.parameters())

    def penalty(*ps):
        with sg.enable_grad():
            xi = sg.tensor(x.data, requires_grad=True)
            (g,) = sg.grad(critic(xi).sum(), xi, create_graph=True)
            return ((F.sqrt((g * g).sum(axis=1)) - 1.0) ** 2).mean()

    gradcheck(penalty, params)
