"""Gradient clipping and parameter averaging."""
from __future__ import annotations

import numpy as np
import pytest

import scratchgen as sg
import scratchgen.nn as nn
import scratchgen.optim as optim


def _params_with_grads(grads):
    ps = []
    for g in grads:
        p = nn.Parameter(np.zeros_like(g))
        p.grad = sg.Tensor(g)
        ps.append(p)
    return ps


def test_clip_grad_norm_scales_jointly_without_touching_arrays():
    g1, g2 = np.array([3.0, 0.0]), np.array([[0.0, 4.0]])
    ps = _params_with_grads([g1, g2])
    total = optim.clip_grad_norm_(ps, max_norm=1.0)
    assert total == pytest.approx(5.0)
    np.testing.assert_allclose(ps[0].grad.numpy(), g1 / (5 + 1e-6))
    np.testing.assert_allclose(ps[1].grad.numpy(), g2 / (5 + 1e-6))
    np.testing.assert_array_equal(g1, [3.0, 0.0])  # the old arrays are left alone
    assert ps[0].grad.data is not g1
    joint = np.sqrt(sum((p.grad.numpy() ** 2).sum() for p in ps))
    assert joint == pytest.approx(1.0, rel=1e-5)


def test_clip_grad_norm_other_norms_and_no_op():
    g = [np.array([1.0, -2.0]), np.array([0.5])]
    ps = _params_with_grads(g)
    assert optim.clip_grad_norm_(ps, 100.0) == pytest.approx(np.sqrt(5.25))
    assert ps[0].grad.data is g[0]  # nothing to clip: untouched
    assert optim.clip_grad_norm_(ps, 100.0, norm_type=1) == pytest.approx(3.5)
    assert optim.clip_grad_norm_(ps, 1.0, norm_type=float("inf")) == pytest.approx(2.0)
    np.testing.assert_allclose(ps[0].grad.numpy(), g[0] / (2 + 1e-6))
    bad = _params_with_grads([np.array([np.inf])])
    with pytest.raises(RuntimeError, match="norm"):
        optim.clip_grad_norm_(bad, 1.0, error_if_nonfinite=True)
    assert optim.clip_grad_norm_([nn.Parameter(np.zeros(1))], 1.0) == 0.0


def test_clip_grad_value():
    g = np.array([-3.0, 0.2, 5.0])
    ps = _params_with_grads([g])
    optim.clip_grad_value_(ps, 1.0)
    np.testing.assert_array_equal(ps[0].grad.numpy(), [-1.0, 0.2, 1.0])
    np.testing.assert_array_equal(g, [-3.0, 0.2, 5.0])
    assert nn.utils.clip_grad_norm_ is optim.clip_grad_norm_


def test_ema_math_swap_and_copy():
    sg.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3)).to("float64")
    ema = optim.EMA(net, decay=0.9)
    w = net[0].weight
    history = [w.numpy().copy()]
    for k in range(5):
        w.data = w.data + (k + 1)  # a fake optimizer step
        net(sg.randn(4, 2, dtype="float64"))  # moves the running statistics
        ema.update()
        history.append(w.numpy().copy())
    # shadow = 0.9^5 theta_0 + sum_k 0.1 * 0.9^(5-k) theta_k
    expected = 0.9 ** 5 * history[0] + sum(0.1 * 0.9 ** (5 - k) * history[k] for k in range(1, 6))
    np.testing.assert_allclose(ema.shadow["0.weight"], expected, rtol=1e-12)
    np.testing.assert_array_equal(ema.buffers["1.running_mean"], net[1].running_mean.numpy())
    live = w.numpy().copy()
    with ema.average_parameters() as m:
        assert m is net
        np.testing.assert_allclose(w.numpy(), expected, rtol=1e-12)
    np.testing.assert_array_equal(w.numpy(), live)
    twin = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3)).to("float64")
    ema.copy_to(twin)
    np.testing.assert_allclose(twin[0].weight.numpy(), expected, rtol=1e-12)
    np.testing.assert_array_equal(twin[1].running_var.numpy(), net[1].running_var.numpy())
    twin[0].weight.data[...] = 0  # copies, not views of the shadow
    assert np.any(ema.shadow["0.weight"] != 0)


def test_ema_state_dict_round_trip():
    net = nn.Linear(2, 2)
    ema = optim.EMA(net, decay=0.5)
    net.weight.data = net.weight.data + 1
    ema.update()
    sd = ema.state_dict()
    other = optim.EMA(nn.Linear(2, 2), decay=0.99)
    other.load_state_dict(sd)
    assert other.decay == 0.5 and other.num_updates == 1
    np.testing.assert_array_equal(other.shadow["weight"], ema.shadow["weight"])
    with pytest.raises(RuntimeError, match="missing"):
        optim.EMA(nn.Linear(2, 2, bias=False)).load_state_dict(sd)


def test_ema_warmup_forgets_the_initial_weights():
    """With warm-up the t-th update uses min(decay, (1 + t) / (10 + t)): after T updates the
    initial weights keep prod_t (1 + t) / (10 + t) = 1 / C(T + 9, 9) of the average, instead
    of decay**T; the warm-up flag travels in the state dict."""
    from math import comb

    net = nn.Linear(1, 1, bias=False).to("float64")
    net.weight.data[...] = 1.0
    ema = optim.EMA(net, decay=0.999, warmup=True)
    plain = optim.EMA(net, decay=0.999)
    steps = 30
    for _ in range(steps):
        net.weight.data = net.weight.data * 0  # every later weight is 0
        ema.update()
        plain.update()
    assert np.isclose(ema.shadow["weight"].item(), 1 / comb(steps + 9, 9), rtol=1e-12)
    assert np.isclose(plain.shadow["weight"].item(), 0.999 ** steps, rtol=1e-12)
    # once (1 + t) / (10 + t) passes the decay, the decay itself is used
    late = optim.EMA(net, decay=0.5, warmup=True)
    late.num_updates = 100
    net.weight.data[...] = 2.0
    late.update()
    assert np.isclose(late.shadow["weight"].item(), 0.5 * 0.0 + 0.5 * 2.0)
    other = optim.EMA(net, decay=0.9)
    other.load_state_dict(ema.state_dict())
    assert other.warmup is True and other.num_updates == steps
