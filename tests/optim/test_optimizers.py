"""Optimizers against their update equations, computed independently in NumPy."""
from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import scratchgen as sg
import scratchgen.nn as nn
import scratchgen.optim as optim
from scratchgen.serialization import load, save

A = np.array([1.0, 4.0, 0.5])
C = np.array([0.3, -1.0, 2.0])


def quadratic_grad(theta):
    """f(theta) = 1/2 sum_i A_i (theta_i - C_i)^2, grad = A (theta - C)."""
    return A * (theta - C)


def run(opt_factory, steps=6, theta0=(1.0, 2.0, -1.0)):
    p = nn.Parameter(np.array(theta0, dtype=np.float64))
    opt = opt_factory([p])
    out = []
    for _ in range(steps):
        opt.zero_grad()
        loss = (sg.tensor(A / 2) * (p - sg.tensor(C)) ** 2).sum()
        loss.backward()
        opt.step()
        out.append(p.numpy().copy())
    return np.array(out)


def sgd_ref(theta, steps, lr, momentum=0.0, dampening=0.0, wd=0.0, nesterov=False):
    theta = np.array(theta, float)
    buf, out = None, []
    for _ in range(steps):
        g = quadratic_grad(theta) + wd * theta
        if momentum:
            buf = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        theta = theta - lr * g
        out.append(theta)
    return np.array(out)


def adam_ref(theta, steps, lr, b1, b2, eps, wd=0.0, amsgrad=False, decoupled=False):
    theta = np.array(theta, float)
    m = v = vmax = np.zeros_like(theta)
    out = []
    for t in range(1, steps + 1):
        g = quadratic_grad(theta)
        if decoupled:
            theta = theta * (1 - lr * wd)
        else:
            g = g + wd * theta
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        vmax = np.maximum(vmax, v)
        mhat = m / (1 - b1 ** t)
        vhat = (vmax if amsgrad else v) / (1 - b2 ** t)
        theta = theta - lr * mhat / (np.sqrt(vhat) + eps)
        out.append(theta)
    return np.array(out)


def rmsprop_ref(theta, steps, lr, alpha, eps, wd=0.0, momentum=0.0, centered=False):
    theta = np.array(theta, float)
    sq = ga = buf = np.zeros_like(theta)
    out = []
    for _ in range(steps):
        g = quadratic_grad(theta) + wd * theta
        sq = alpha * sq + (1 - alpha) * g * g
        if centered:
            ga = alpha * ga + (1 - alpha) * g
            avg = np.sqrt(sq - ga * ga) + eps
        else:
            avg = np.sqrt(sq) + eps
        if momentum:
            buf = momentum * buf + g / avg
            theta = theta - lr * buf
        else:
            theta = theta - lr * g / avg
        out.append(theta)
    return np.array(out)


THETA0 = (1.0, 2.0, -1.0)


def test_sgd_plain_hand_computed():
    # theta1 = theta0 - lr A (theta0 - C)
    out = run(lambda ps: optim.SGD(ps, lr=0.1), steps=1)
    expected = np.array(THETA0) - 0.1 * A * (np.array(THETA0) - C)
    np.testing.assert_allclose(out[0], expected, rtol=1e-15)


@settings(max_examples=10, deadline=None)
@given(st.sampled_from([0.0, 0.5, 0.9]), st.sampled_from([0.0, 0.3]),
       st.sampled_from([0.0, 0.1]), st.booleans())
def test_sgd_momentum_nesterov_weight_decay(momentum, dampening, wd, nesterov):
    if nesterov and (momentum == 0 or dampening != 0):
        with pytest.raises(ValueError, match="Nesterov"):
            optim.SGD([nn.Parameter(np.zeros(1))], lr=0.1, momentum=momentum,
                      dampening=dampening, nesterov=True)
        return
    out = run(lambda ps: optim.SGD(ps, lr=0.05, momentum=momentum, dampening=dampening,
                                   weight_decay=wd, nesterov=nesterov))
    ref = sgd_ref(THETA0, 6, 0.05, momentum, dampening, wd, nesterov)
    np.testing.assert_allclose(out, ref, rtol=1e-13)


def test_adam_first_step_is_lr_times_sign():
    """With m_hat = g and v_hat = g^2 after one step, the step is lr g / (|g| + eps)."""
    out = run(lambda ps: optim.Adam(ps, lr=0.01), steps=1)
    g = quadratic_grad(np.array(THETA0))
    np.testing.assert_allclose(out[0], np.array(THETA0) - 0.01 * g / (np.abs(g) + 1e-8),
                               rtol=1e-14)


@settings(max_examples=8, deadline=None)
@given(st.sampled_from([(0.9, 0.999), (0.5, 0.999), (0.0, 0.99)]), st.sampled_from([0.0, 0.1]),
       st.booleans())
def test_adam_matches_algorithm(betas, wd, amsgrad):
    out = run(lambda ps: optim.Adam(ps, lr=0.05, betas=betas, weight_decay=wd,
                                    amsgrad=amsgrad), steps=8)
    ref = adam_ref(THETA0, 8, 0.05, *betas, 1e-8, wd=wd, amsgrad=amsgrad)
    np.testing.assert_allclose(out, ref, rtol=1e-12)


def test_adamw_decouples_weight_decay():
    out = run(lambda ps: optim.AdamW(ps, lr=0.05, weight_decay=0.3), steps=8)
    ref = adam_ref(THETA0, 8, 0.05, 0.9, 0.999, 1e-8, wd=0.3, decoupled=True)
    np.testing.assert_allclose(out, ref, rtol=1e-12)
    l2 = adam_ref(THETA0, 8, 0.05, 0.9, 0.999, 1e-8, wd=0.3)
    assert not np.allclose(out, l2)
    assert optim.AdamW([nn.Parameter(np.zeros(1))]).defaults["weight_decay"] == 1e-2


@settings(max_examples=8, deadline=None)
@given(st.sampled_from([0.0, 0.5]), st.booleans(), st.sampled_from([0.0, 0.05]))
def test_rmsprop_matches_algorithm(momentum, centered, wd):
    out = run(lambda ps: optim.RMSprop(ps, lr=0.01, alpha=0.9, momentum=momentum,
                                       centered=centered, weight_decay=wd), steps=8)
    ref = rmsprop_ref(THETA0, 8, 0.01, 0.9, 1e-8, wd, momentum, centered)
    np.testing.assert_allclose(out, ref, rtol=1e-12)


def test_defaults_as_pytorch():
    p = [nn.Parameter(np.zeros(1))]
    assert optim.Adam(p).defaults == dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                                         weight_decay=0.0, amsgrad=False)
    assert optim.RMSprop(p).defaults == dict(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0,
                                            momentum=0.0, centered=False)
    with pytest.raises(ValueError, match="lr"):
        optim.SGD(p)  # lr is required
    with pytest.raises(ValueError, match="empty"):
        optim.Adam([])
    with pytest.raises(ValueError, match="betas"):
        optim.Adam(p, betas=(1.0, 0.9))


def test_param_groups_and_add_param_group():
    a, b = nn.Parameter(np.ones(2)), nn.Parameter(np.ones(2))
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 1.0}], lr=0.1, momentum=0.0)
    a.grad = sg.tensor(np.ones(2))
    b.grad = sg.tensor(np.ones(2))
    opt.step()
    np.testing.assert_allclose(a.numpy(), 0.9)
    np.testing.assert_allclose(b.numpy(), 0.0)
    c = nn.Parameter(np.ones(1))
    opt.add_param_group({"params": c, "lr": 0.5})
    assert opt.param_groups[2]["momentum"] == 0.0
    with pytest.raises(ValueError, match="more than one"):
        opt.add_param_group({"params": [a]})
    opt.zero_grad()
    assert a.grad is None and b.grad is None


def test_gradient_arrays_are_never_modified():
    p = nn.Parameter(np.array([1.0, -2.0]))
    shared = np.array([0.5, 0.5])
    for opt in (optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.1, nesterov=True),
                optim.Adam([p], weight_decay=0.1, amsgrad=True), optim.AdamW([p]),
                optim.RMSprop([p], momentum=0.5, centered=True, weight_decay=0.1)):
        for _ in range(3):
            p.grad = sg.Tensor(shared)
            opt.step()
        np.testing.assert_array_equal(shared, [0.5, 0.5])
        assert p.grad.data is shared


def test_parameters_without_grad_are_skipped():
    a, b = nn.Parameter(np.ones(2)), nn.Parameter(np.ones(2))
    opt = optim.Adam([a, b], lr=0.1)
    a.grad = sg.tensor(np.ones(2))
    opt.step()
    np.testing.assert_array_equal(b.numpy(), 1.0)
    assert b not in opt.state and opt.state[a]["step"] == 1


@pytest.mark.parametrize("factory", [
    lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
    lambda ps: optim.Adam(ps, lr=0.01, betas=(0.5, 0.999), amsgrad=True),
    lambda ps: optim.AdamW(ps, lr=0.01),
    lambda ps: optim.RMSprop(ps, lr=0.01, momentum=0.5, centered=True),
], ids=["sgd", "adam", "adamw", "rmsprop"])
def test_state_dict_round_trip_gives_identical_steps(factory, tmp_path):
    sg.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    opt = factory(net.parameters())
    xs = [sg.randn(5, 3) for _ in range(6)]

    def train_step(model, o, x):
        o.zero_grad()
        (model(x) ** 2).mean().backward()
        o.step()

    for x in xs[:3]:
        train_step(net, opt, x)
    save({"model": net.state_dict(), "optim": opt.state_dict()}, tmp_path / "ck.npz")
    ck = load(tmp_path / "ck.npz")
    twin = copy.deepcopy(net)
    for p in twin.parameters():
        p.data = p.data * 0  # make sure the loaded values are what count
    twin.load_state_dict(ck["model"])
    twin_opt = factory(twin.parameters())
    twin_opt.load_state_dict(ck["optim"])
    assert twin_opt.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    for x in xs[3:]:
        train_step(net, opt, x)
        train_step(twin, twin_opt, x)
    for a, b in zip(net.parameters(), twin.parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_load_state_dict_mismatches():
    a = [nn.Parameter(np.ones(2)), nn.Parameter(np.ones(3))]
    opt = optim.Adam(a)
    for p in a:
        p.grad = sg.tensor(np.ones(p.shape))
    opt.step()
    sd = opt.state_dict()
    assert sorted(sd["state"]) == [0, 1] and sd["param_groups"][0]["params"] == [0, 1]
    with pytest.raises(ValueError, match="parameter groups"):
        optim.Adam([{"params": a[:1]}, {"params": a[1:]}]).load_state_dict(sd)
    with pytest.raises(ValueError, match="group 0 has 2 parameters"):
        optim.Adam(a[:1]).load_state_dict(sd)
    with pytest.raises(ValueError, match="shape"):
        optim.Adam([nn.Parameter(np.ones(3)), nn.Parameter(np.ones(2))]).load_state_dict(sd)
    # the saved state is a snapshot: further steps do not change it
    m0 = sd["state"][0]["exp_avg"].copy()
    opt.step()
    np.testing.assert_array_equal(sd["state"][0]["exp_avg"], m0)


def test_optimizer_follows_module_to_float64():
    net = nn.Linear(2, 2)
    opt = optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    net(sg.randn(3, 2)).sum().backward()
    opt.step()
    net.to("float64")
    opt.zero_grad()
    net(sg.randn(3, 2, dtype="float64")).sum().backward()
    opt.step()
    assert net.weight.dtype == np.float64
    assert opt.state[net.weight]["momentum_buffer"].dtype == np.float64
