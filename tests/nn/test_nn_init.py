"""Initialisers: distributions, fans, gains, reproducibility, DCGAN's scheme, PyTorch defaults."""
from __future__ import annotations

import math

import numpy as np
import pytest

import scratchgen as sg
import scratchgen.functional as F
import scratchgen.nn as nn
from scratchgen.nn import init


def test_calculate_gain():
    assert init.calculate_gain("linear") == 1.0
    assert init.calculate_gain("conv2d") == 1.0
    assert init.calculate_gain("sigmoid") == 1.0
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("leaky_relu") == pytest.approx(math.sqrt(2 / (1 + 0.01 ** 2)))
    assert init.calculate_gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04))
    assert init.calculate_gain("selu") == 0.75
    with pytest.raises(ValueError):
        init.calculate_gain("swishy")


def test_fans_as_pytorch():
    assert init._calculate_fan_in_and_fan_out(sg.zeros(16, 8, 3, 3)) == (72, 144)
    assert init._calculate_fan_in_and_fan_out(sg.zeros(5, 7)) == (7, 5)
    with pytest.raises(ValueError, match="at least 2"):
        init._calculate_fan_in_and_fan_out(sg.zeros(4))


def test_distributions_moments_and_bounds():
    t = sg.zeros(200, 300, dtype="float64")
    init.normal_(t, 0.5, 2.0)
    assert abs(t.numpy().mean() - 0.5) < 0.03 and abs(t.numpy().std() - 2.0) < 0.03
    init.uniform_(t, -3, 1)
    assert t.numpy().min() >= -3 and t.numpy().max() < 1
    assert abs(t.numpy().mean() + 1) < 0.02
    init.xavier_uniform_(t, gain=2.0)
    a = 2.0 * math.sqrt(6 / 500)
    assert np.abs(t.numpy()).max() <= a and np.abs(t.numpy()).max() > 0.99 * a
    init.xavier_normal_(t)
    assert abs(t.numpy().std() - math.sqrt(2 / 500)) < 0.002
    init.kaiming_normal_(t, mode="fan_out", nonlinearity="relu")
    assert abs(t.numpy().std() - math.sqrt(2 / 200)) < 0.003
    init.kaiming_uniform_(t, a=0.2)
    bound = math.sqrt(2 / 1.04) * math.sqrt(3 / 300)
    assert np.abs(t.numpy()).max() <= bound and np.abs(t.numpy()).max() > 0.99 * bound
    init.constant_(t, 3.0)
    np.testing.assert_array_equal(t.numpy(), 3.0)
    init.zeros_(t)
    assert not t.numpy().any()
    init.ones_(t)
    assert t.dtype == np.float64 and np.all(t.numpy() == 1)


def test_initialisers_write_in_place_and_are_reproducible():
    t = sg.zeros(4, 4)
    arr = t.data
    assert init.normal_(t) is t and t.data is arr and t.dtype == np.float32
    sg.manual_seed(7)
    a = init.normal_(sg.zeros(3, 3)).numpy().copy()
    sg.manual_seed(7)
    np.testing.assert_array_equal(init.normal_(sg.zeros(3, 3)).numpy(), a)


@pytest.mark.parametrize("shape", [(6, 4), (4, 6), (3, 2, 2, 2)])
def test_orthogonal(shape):
    t = init.orthogonal_(sg.zeros(*shape, dtype="float64"), gain=1.5)
    m = t.numpy().reshape(shape[0], -1)
    if m.shape[0] <= m.shape[1]:
        np.testing.assert_allclose(m @ m.T, 2.25 * np.eye(m.shape[0]), atol=1e-12)
    else:
        np.testing.assert_allclose(m.T @ m, 2.25 * np.eye(m.shape[1]), atol=1e-12)


def test_linear_and_conv_defaults_as_pytorch():
    lin = nn.Linear(50, 400)
    bound = 1 / math.sqrt(50)
    w, b = lin.weight.numpy(), lin.bias.numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.98 * bound
    assert np.abs(b).max() <= bound and abs(w.std() - bound / math.sqrt(3)) < 0.005
    if hasattr(F, "conv2d"):
        conv = nn.Conv2d(4, 64, 3)
        assert conv.weight.shape == (64, 4, 3, 3)
        assert np.abs(conv.weight.numpy()).max() <= 1 / 6
        convt = nn.ConvTranspose2d(4, 64, 3)
        # PyTorch computes the transposed weight's "fan_in" from its axis 1 (out_channels)
        assert convt.weight.shape == (4, 64, 3, 3)
        assert np.abs(convt.weight.numpy()).max() <= 1 / math.sqrt(64 * 9)
        assert np.abs(convt.bias.numpy()).max() <= 1 / math.sqrt(64 * 9)


def test_dcgan_init():
    net = nn.Sequential(nn.ConvTranspose2d(8, 64, 4), nn.BatchNorm2d(64), nn.ReLU(),
                        nn.Conv2d(64, 64, 4), nn.Linear(64, 128))
    nn.init.dcgan_init(net)
    ws = np.concatenate([net[i].weight.numpy().ravel() for i in (0, 3, 4)])
    assert abs(ws.mean()) < 0.002 and abs(ws.std() - 0.02) < 0.001
    g = net[1].weight.numpy()
    assert abs(g.mean() - 1) < 0.01 and 0.01 < g.std() < 0.03
    for i in (0, 1, 3, 4):
        np.testing.assert_array_equal(net[i].bias.numpy(), 0)
    net.apply(nn.init.dcgan_init)  # the apply form works too


def test_embedding_init_and_index_checks():
    emb = nn.Embedding(1000, 20)
    assert abs(emb.weight.numpy().std() - 1) < 0.03
    with pytest.raises(IndexError, match="indices must lie in"):
        emb(np.array([1000]))
    with pytest.raises(TypeError, match="integer"):
        emb(np.array([0.5]))
    np.testing.assert_array_equal(emb(sg.tensor(np.array([3, 3]))).numpy(),
                                  emb.weight.numpy()[[3, 3]])
