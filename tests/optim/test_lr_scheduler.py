"""Learning-rate schedules against their closed forms."""
from __future__ import annotations

import math

import numpy as np
import pytest

import scratchgen.nn as nn
import scratchgen.optim as optim
from scratchgen.optim import lr_scheduler as sched


def _opt(lr=0.1, groups=1):
    ps = [{"params": [nn.Parameter(np.zeros(1))], "lr": lr * (i + 1)} for i in range(groups)]
    return optim.SGD(ps, lr=lr)


def _trace(s, n):
    out = [s.get_last_lr()]
    for _ in range(n - 1):
        s.optimizer.step()
        s.step()
        out.append(s.get_last_lr())
    return np.array(out)


def test_step_and_exponential():
    opt = _opt(0.1, groups=2)
    s = sched.StepLR(opt, step_size=3, gamma=0.5)
    got = _trace(s, 10)
    e = np.arange(10)[:, None]
    np.testing.assert_allclose(got, np.array([[0.1, 0.2]]) * 0.5 ** (e // 3), rtol=1e-12)
    assert opt.param_groups[1]["lr"] == got[-1, 1]
    got = _trace(sched.ExponentialLR(_opt(0.1), gamma=0.9), 10)
    np.testing.assert_allclose(got[:, 0], 0.1 * 0.9 ** np.arange(10), rtol=1e-12)


def test_cosine_annealing_closed_form():
    got = _trace(sched.CosineAnnealingLR(_opt(0.1), T_max=8, eta_min=0.01), 17)[:, 0]
    e = np.arange(17)
    np.testing.assert_allclose(got, 0.01 + 0.09 * (1 + np.cos(np.pi * e / 8)) / 2, rtol=1e-12)
    assert got[8] == pytest.approx(0.01) and got[0] == pytest.approx(0.1)


def test_lambda_lr_per_group():
    opt = _opt(1.0, groups=2)
    s = sched.LambdaLR(opt, [lambda e: 1 / (e + 1), lambda e: 0.5 ** e])
    got = _trace(s, 5)
    e = np.arange(5)
    np.testing.assert_allclose(got[:, 0], 1 / (e + 1))
    np.testing.assert_allclose(got[:, 1], 2 * 0.5 ** e)
    assert "lr_lambdas" not in s.state_dict()


def test_linear_decay_cyclegan():
    got = _trace(sched.LinearDecayLR(_opt(2e-4), n_epochs_constant=3, n_epochs_decay=4), 9)[:, 0]
    # CycleGAN's lambda_rule with epoch_count = 1: 1 - max(0, e + 1 - n) / (n_decay + 1),
    # held at 0 past the end instead of going negative
    expected = [2e-4 * max(0.0, 1 - max(0, e + 1 - 3) / 5) for e in range(9)]
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert got[2] == 2e-4 and got[7] == 0.0 and got[8] == 0.0


def test_linear_warmup_then_cosine():
    opt = _opt(0.1)
    cos = sched.CosineAnnealingLR(opt, T_max=6)
    s = sched.LinearWarmup(opt, warmup_steps=4, after=cos)
    got = _trace(s, 12)[:, 0]
    np.testing.assert_allclose(got[:4], [0.025, 0.05, 0.075, 0.1])
    e = np.arange(8)
    np.testing.assert_allclose(got[4:], 0.05 * (1 + np.cos(np.pi * e / 6)), rtol=1e-12)
    plain = _trace(sched.LinearWarmup(_opt(1.0), warmup_steps=2), 4)[:, 0]
    np.testing.assert_allclose(plain, [0.5, 1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="same optimizer"):
        sched.LinearWarmup(_opt(), 2, after=sched.StepLR(_opt(), 2))


@pytest.mark.parametrize("make", [
    lambda o: sched.StepLR(o, 2, 0.5),
    lambda o: sched.ExponentialLR(o, 0.8),
    lambda o: sched.CosineAnnealingLR(o, 10),
    lambda o: sched.LinearDecayLR(o, 2, 5),
    lambda o: sched.LinearWarmup(o, 3, after=sched.ExponentialLR(o, 0.5)),
], ids=["step", "exp", "cos", "lineardecay", "warmup"])
def test_scheduler_state_dict_resumes(make):
    o1 = _opt(0.3)
    s1 = make(o1)
    for _ in range(4):
        s1.step()
    sd = s1.state_dict()
    assert "optimizer" not in sd
    o2 = _opt(0.3)
    s2 = make(o2)
    o2.load_state_dict(o1.state_dict())
    s2.load_state_dict(sd)
    assert s2.last_epoch == 4 and s2.get_last_lr() == s1.get_last_lr()
    for _ in range(4):
        s1.step()
        s2.step()
        assert math.isclose(o1.param_groups[0]["lr"], o2.param_groups[0]["lr"], rel_tol=1e-15)


def test_resume_needs_initial_lr():
    with pytest.raises(KeyError, match="initial_lr"):
        sched.StepLR(_opt(), 2, last_epoch=5)
