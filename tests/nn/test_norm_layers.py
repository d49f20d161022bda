"""Normalisation layers against NumPy references."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import scratchgen as sg
import scratchgen.nn as nn


def _np_normalize(x, axes, eps=1e-5):
    m = x.mean(axis=axes, keepdims=True)
    v = x.var(axis=axes, keepdims=True)
    return (x - m) / np.sqrt(v + eps)


@settings(max_examples=8, deadline=None)
@given(st.integers(2, 5), st.integers(1, 3), st.sampled_from([None, (2, 2), (1, 3)]),
       st.sampled_from([0.1, 0.5, None]))
def test_batchnorm_running_stats_match_numpy(n, c, spatial, momentum):
    shape = (n, c) + (spatial or ())
    bn = (nn.BatchNorm2d if spatial else nn.BatchNorm1d)(c, momentum=momentum).to("float64")
    axes = (0,) + tuple(range(2, len(shape)))
    rng = np.random.default_rng(n * 10 + c)
    rm, rv = np.zeros(c), np.ones(c)
    for t in range(1, 5):
        x = rng.normal(1.5, 2.0, shape)
        y = bn(sg.tensor(x)).numpy()
        np.testing.assert_allclose(y, _np_normalize(x, axes), rtol=1e-10, atol=1e-10)
        k = x.size // c
        mom = 1.0 / t if momentum is None else momentum
        rm = (1 - mom) * rm + mom * x.mean(axis=axes)
        rv = (1 - mom) * rv + mom * x.var(axis=axes) * k / (k - 1)  # unbiased
        np.testing.assert_allclose(bn.running_mean.numpy(), rm, rtol=1e-12)
        np.testing.assert_allclose(bn.running_var.numpy(), rv, rtol=1e-12)
        assert int(bn.num_batches_tracked.item()) == t


def test_batchnorm_eval_is_affine_map_of_running_stats():
    bn = nn.BatchNorm2d(3).to("float64")
    rng = np.random.default_rng(0)
    for _ in range(3):
        bn(sg.tensor(rng.normal(size=(4, 3, 2, 2))))
    bn.weight.data = rng.normal(size=3)
    bn.bias.data = rng.normal(size=3)
    bn.eval()
    x = rng.normal(size=(2, 3, 4, 4))
    rm, rv = bn.running_mean.numpy().copy(), bn.running_var.numpy().copy()
    y = bn(sg.tensor(x)).numpy()
    scale = bn.weight.numpy() / np.sqrt(rv + bn.eps)
    expected = (x - rm[:, None, None]) * scale[:, None, None] + bn.bias.numpy()[:, None, None]
    np.testing.assert_allclose(y, expected, rtol=1e-12)
    np.testing.assert_array_equal(bn.running_mean.numpy(), rm)  # eval leaves them alone
    assert int(bn.num_batches_tracked.item()) == 3
    # one sample is fine in eval mode, an error in training mode
    bn(sg.tensor(x[:1, :, :1, :1]))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        bn.train()(sg.tensor(x[:1, :, :1, :1]))


def test_batchnorm_checks_input():
    with pytest.raises(ValueError, match="4-d input"):
        nn.BatchNorm2d(3)(sg.zeros(2, 3))
    with pytest.raises(ValueError, match="got 2 channels"):
        nn.BatchNorm1d(3)(sg.zeros(4, 2))


def test_conditional_batchnorm_uses_class_gamma_beta():
    cbn = nn.ConditionalBatchNorm2d(2, num_classes=3).to("float64")
    np.testing.assert_array_equal(cbn.gamma.weight.numpy(), 1)
    np.testing.assert_array_equal(cbn.beta.weight.numpy(), 0)
    rng = np.random.default_rng(1)
    cbn.gamma.weight.data = rng.normal(size=(3, 2))
    cbn.beta.weight.data = rng.normal(size=(3, 2))
    x = rng.normal(size=(4, 2, 3, 3))
    y = np.array([2, 0, 1, 2])
    out = cbn(sg.tensor(x), sg.tensor(y)).numpy()
    xhat = _np_normalize(x, (0, 2, 3))
    g = cbn.gamma.weight.numpy()[y][:, :, None, None]
    b = cbn.beta.weight.numpy()[y][:, :, None, None]
    np.testing.assert_allclose(out, g * xhat + b, rtol=1e-10)
    assert [n for n, _ in cbn.named_parameters()] == ["gamma.weight", "beta.weight"]
    assert "bn.running_mean" in cbn.state_dict()


def test_instance_layer_group_norm_match_numpy():
    rng = np.random.default_rng(2)
    x = rng.normal(2.0, 3.0, size=(2, 4, 3, 5))
    inorm = nn.InstanceNorm2d(4).to("float64")
    assert inorm.weight is None and inorm.running_mean is None
    np.testing.assert_allclose(inorm(sg.tensor(x)).numpy(), _np_normalize(x, (2, 3)),
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(inorm.eval()(sg.tensor(x)).numpy(), _np_normalize(x, (2, 3)),
                               rtol=1e-10, atol=1e-12)
    ln = nn.LayerNorm((3, 5)).to("float64")
    ln.weight.data = rng.normal(size=(3, 5))
    ln.bias.data = rng.normal(size=(3, 5))
    np.testing.assert_allclose(ln(sg.tensor(x)).numpy(),
                               _np_normalize(x, (2, 3)) * ln.weight.numpy() + ln.bias.numpy(),
                               rtol=1e-10)
    gn = nn.GroupNorm(2, 4).to("float64")
    gn.weight.data = rng.normal(size=4)
    gn.bias.data = rng.normal(size=4)
    g = _np_normalize(x.reshape(2, 2, -1), (2,)).reshape(x.shape)
    affine = g * gn.weight.numpy()[:, None, None] + gn.bias.numpy()[:, None, None]
    np.testing.assert_allclose(gn(sg.tensor(x)).numpy(), affine, rtol=1e-10)
    with pytest.raises(ValueError, match="divisible"):
        nn.GroupNorm(3, 4)


def test_instance_norm_running_stats_as_pytorch():
    m = nn.InstanceNorm2d(2, track_running_stats=True).to("float64")
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 2, 2, 3))
    m(sg.tensor(x))
    per = x.reshape(3, 2, -1)
    np.testing.assert_allclose(m.running_mean.numpy(), 0.1 * per.mean(-1).mean(0), rtol=1e-12)
    np.testing.assert_allclose(m.running_var.numpy(),
                               0.9 + 0.1 * per.var(-1, ddof=1).mean(0), rtol=1e-12)
    m.eval()
    out = m(sg.tensor(x)).numpy()
    rm, rv = m.running_mean.numpy(), m.running_var.numpy()
    np.testing.assert_allclose(out, (x - rm[:, None, None]) / np.sqrt(rv[:, None, None] + 1e-5),
                               rtol=1e-12)
