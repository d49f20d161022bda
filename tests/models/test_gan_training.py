"""GANTrainStep: which network each update trains, the n_dis schedule, penalties, EMA, resume."""
from __future__ import annotations

import numpy as np
import pytest

import scratchgen as sg
import scratchgen.nn as nn
from scratchgen.losses import gan
from scratchgen.models.gan_training import (
    GANTrainStep, sample_labels, sample_latents, standing_statistics,
)


class _G(nn.Module):
    def __init__(self, z_dim: int = 3, num_classes: int | None = None) -> None:
        super().__init__()
        self.z_dim, self.num_classes = z_dim, num_classes
        self.fc = nn.Linear(z_dim, 2)
        self.emb = nn.Embedding(num_classes, 2) if num_classes else None

    def forward(self, z, y=None):
        h = self.fc(z)
        return h if y is None else h + self.emb(y)


class _D(nn.Module):
    def __init__(self, num_classes: int | None = None) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))
        self.emb = nn.Embedding(num_classes, 1) if num_classes else None

    def forward(self, x, y=None):
        out = self.net(x).reshape(-1)
        return out if y is None else out + self.emb(y).reshape(-1)


def _weights(m: nn.Module) -> dict[str, np.ndarray]:
    return {k: v.copy() for k, v in m.state_dict().items()}


def _changed(a: dict, b: dict) -> bool:
    return any(not np.array_equal(a[k], b[k]) for k in a)


def _batch(n: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 2)).astype(np.float32) + 2.0


def test_each_update_trains_only_its_network():
    sg.manual_seed(0)
    G, D = _G(), _D()
    step = GANTrainStep(G, D, lr_g=1e-2, lr_d=1e-2)
    x = sg.tensor(_batch())
    fake, _ = step.generate(16)
    g0, d0 = _weights(G), _weights(D)
    step.discriminator_update(x, None, fake, None)
    assert _changed(d0, _weights(D)) and not _changed(g0, _weights(G))
    assert all(p.grad is None for p in G.parameters())
    d1 = _weights(D)
    fake, _ = step.generate(16)
    step.generator_update(fake, None)
    assert _changed(g0, _weights(G)) and not _changed(d1, _weights(D))
    assert all(p.grad is None for p in D.parameters())
    assert all(p.requires_grad for p in D.parameters())   # unfrozen afterwards


def test_generator_update_every_n_dis_calls():
    sg.manual_seed(0)
    G, D = _G(), _D()
    step = GANTrainStep(G, D, n_dis=3)
    changes = []
    for i in range(6):
        before = _weights(G)
        step(_batch(seed=i))
        changes.append(_changed(before, _weights(G)))
    assert changes == [False, False, True, False, False, True]
    assert step.d_updates == 6


def test_losses_reported_match_the_loss_functions():
    sg.manual_seed(0)
    G, D = _G(), _D()
    step = GANTrainStep(G, D, d_loss="hinge", g_loss="hinge")
    x = sg.tensor(_batch())
    fake, _ = step.generate(16)
    loss, parts = step.discriminator_loss(x, None, fake, None)
    want = gan.discriminator_loss(D(x), D(fake.detach()), "hinge")
    assert loss.item() == pytest.approx(want.item(), rel=1e-6)
    assert parts["d_real"].item() == pytest.approx(D(x).mean().item(), rel=1e-6)


def test_penalties_are_added_to_the_discriminator_loss():
    sg.manual_seed(0)
    G, D = _G(), _D()
    x = sg.tensor(_batch())
    fake, _ = GANTrainStep(G, D).generate(16)
    plain, _ = GANTrainStep(G, D).discriminator_loss(x, None, fake, None)
    loss, parts = GANTrainStep(G, D, r1_gamma=3.0).discriminator_loss(x, None, fake, None)
    assert loss.item() == pytest.approx(plain.item() + gan.r1_penalty(D, x, 3.0).item(), rel=1e-5)
    assert parts["r1"].item() > 0
    loss, parts = GANTrainStep(G, D, gp_lambda=10.0).discriminator_loss(x, None, fake, None)
    assert loss.item() == pytest.approx(plain.item() + parts["gp"].item(), rel=1e-5)
    assert parts["gp"].item() > 0


def test_conditional_step_uses_the_batch_labels_and_checks_batches():
    sg.manual_seed(0)
    G, D = _G(num_classes=4), _D(num_classes=4)
    step = GANTrainStep(G, D)
    y = np.array([0, 1, 2, 3] * 4)
    out = step((_batch(), y))
    assert np.isfinite(out["loss_d"]) and np.isfinite(out["loss_g"])
    with pytest.raises(ValueError, match="conditional"):
        step(_batch())
    with pytest.raises(ValueError, match="conditional"):
        GANTrainStep(_G(), _D())((_batch(), y))


def test_bad_settings_are_refused_by_name():
    with pytest.raises(ValueError, match="'nope'"):
        GANTrainStep(_G(), _D(), d_loss="nope")
    with pytest.raises(ValueError, match="'nope'"):
        GANTrainStep(_G(), _D(), g_loss="nope")
    with pytest.raises(ValueError, match="n_dis"):
        GANTrainStep(_G(), _D(), n_dis=0)
    with pytest.raises(ValueError, match="gp_lambda=-1"):
        GANTrainStep(_G(), _D(), gp_lambda=-1)


def test_non_finite_losses_stop_the_step():
    G, D = _G(), _D()
    step = GANTrainStep(G, D)
    with pytest.raises(FloatingPointError, match="not finite"):
        step(np.full((4, 2), np.nan, dtype=np.float32))


def test_sampling_swaps_in_the_ema_weights_and_restores_them():
    sg.manual_seed(0)
    G, D = _G(), _D()
    step = GANTrainStep(G, D, lr_g=0.1, ema_decay=0.5)
    for i in range(4):
        step(_batch(seed=i))
    own = _weights(G)
    assert _changed(own, {k: v for k, v in step.ema.shadow.items()})
    with step.sampling() as g:
        assert not g.training
        for k, v in g.state_dict().items():
            np.testing.assert_array_equal(v, step.ema.shadow[k])
    assert G.training and not _changed(own, _weights(G))


def test_state_dict_resumes_exactly():
    def run(n: int, split: int | None) -> dict:
        sg.manual_seed(1)
        G, D = _G(), _D()
        step = GANTrainStep(G, D, n_dis=2, ema_decay=0.9)
        for i in range(n):
            if i == split:
                state = (step.state_dict(), G.state_dict(), D.state_dict(),
                         sg.backend.get_rng_state())
                sg.manual_seed(99)
                G, D = _G(), _D()
                step = GANTrainStep(G, D, n_dis=2, ema_decay=0.9)
                step.load_state_dict(state[0])
                G.load_state_dict(state[1])
                D.load_state_dict(state[2])
                sg.backend.set_rng_state(state[3])
            step(_batch(seed=i))
        return {**_weights(G), **{"D." + k: v for k, v in _weights(D).items()},
                **{"ema." + k: v for k, v in step.ema.shadow.items()}}

    a, b = run(7, None), run(7, 3)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_truncated_latents_stay_inside_the_threshold():
    sg.manual_seed(0)
    like = sg.zeros(1)
    z = sample_latents(5000, 8, like, truncation=0.5).numpy()
    assert np.abs(z).max() <= 0.5
    assert z.std() == pytest.approx(0.28, abs=0.02)   # N(0,1) truncated to [-0.5, 0.5]: 0.2835
    full = sample_latents(5000, 8, like).numpy()
    assert np.abs(full).max() > 2.5
    with pytest.raises(ValueError, match="truncation"):
        sample_latents(3, 2, like, truncation=0.0)


class _BNG(nn.Module):
    """z -> Linear -> BatchNorm1d: a generator whose batch-norm input is easy to recompute."""

    def __init__(self, z_dim: int = 3, num_classes: int | None = None) -> None:
        super().__init__()
        self.z_dim, self.num_classes = z_dim, num_classes
        self.fc = nn.Linear(z_dim, 2)
        self.bn = nn.BatchNorm1d(2)
        self.emb = nn.Embedding(num_classes, 2) if num_classes else None

    def forward(self, z, y=None):
        h = self.fc(z) if y is None else self.fc(z) + self.emb(y)
        return self.bn(h)


@pytest.mark.parametrize("num_classes", [None, 3])
def test_standing_statistics_are_the_batch_norm_inputs_moments(num_classes):
    sg.manual_seed(0)
    G = _BNG(num_classes=num_classes)
    G.bn.running_mean.data[:] = 5.0           # stale statistics of other weights
    sg.manual_seed(1)
    sg.randn(4)
    expected = sg.randn(4).numpy()             # the caller's stream must not move
    sg.manual_seed(1)
    sg.randn(4)
    standing_statistics(G, batches=3, batch_size=8, seed=7)
    np.testing.assert_array_equal(sg.randn(4).numpy(), expected)
    assert not G.training and G.bn.momentum == 0.1
    # the same latents and labels again, through the layers before the batch norm
    with sg.no_grad(), sg.backend.fork_rng(7):
        like = next(iter(G.parameters()))
        inputs = []
        for _ in range(3):
            z = sample_latents(8, 3, like)
            if num_classes is None:
                inputs.append(G.fc(z).numpy())
            else:
                y = sample_labels(8, num_classes, like)
                inputs.append((G.fc(z) + G.emb(y)).numpy())
    h = np.stack(inputs)                                        # (3 batches, 8, 2)
    np.testing.assert_allclose(G.bn.running_mean.numpy(), h.mean(axis=(0, 1)), rtol=1e-5)
    np.testing.assert_allclose(G.bn.running_var.numpy(), h.var(axis=1, ddof=1).mean(axis=0),
                               rtol=1e-5)


def test_sampling_with_ema_uses_the_averages_own_statistics_and_restores_the_live_ones():
    sg.manual_seed(0)
    G, D = _BNG(), _D()
    step = GANTrainStep(G, D, lr_g=0.1, ema_decay=0.5)
    for i in range(4):
        step(_batch(seed=i))
    live = G.bn.running_mean.numpy().copy()
    with step.sampling() as g:
        inside = g.bn.running_mean.numpy().copy()
    assert not np.allclose(inside, live)
    np.testing.assert_array_equal(G.bn.running_mean.numpy(), live)


def test_standing_statistics_leave_a_generator_without_batch_norm_alone():
    G = _G()
    own = _weights(G)
    assert standing_statistics(G) is G and not _changed(own, _weights(G))
