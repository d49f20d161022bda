"""The IWAE bound, checked on a linear-Gaussian VAE whose log p(x) is known exactly."""
from __future__ import annotations

import math
import pathlib

import numpy as np
import pytest

import scratchgen as sg
from scratchgen import nn
from scratchgen.losses.kl import gaussian_log_prob, kl_normal_standard_normal
from scratchgen.metrics.likelihood import (
    evaluate_iwae, iwae_bound, iwae_log_likelihood, log_importance_weights,
)
from scratchgen.models.vae import VAE
from scratchgen.testing import gradcheck

D, Z, SIGMA2 = 3, 2, 0.4
MNIST_DIR = pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mnist"


class LinearEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.mean = nn.Linear(D, Z)
        self.logvar = nn.Parameter(np.zeros(Z))

    def forward(self, x):
        mu = self.mean(x)
        return mu, self.logvar.unsqueeze(0).broadcast_to(mu.shape)


def make_model(rng, exact: bool):
    """x = W z + b + N(0, sigma^2 I) (W with orthogonal columns); the encoder is the exact
    posterior when ``exact``, else a deliberately poor one."""
    q, _ = np.linalg.qr(rng.normal(size=(D, Z)))
    w, b = q * np.array([1.5, 0.8]), rng.normal(size=D)
    model = VAE((D,), z_dim=Z, likelihood="gaussian", decoder_logvar=math.log(SIGMA2),
                encoder=LinearEncoder(), decoder=nn.Linear(Z, D)).to("float64")
    model.decoder.weight.data, model.decoder.bias.data = w.copy(), b.copy()
    m = w.T @ w + SIGMA2 * np.eye(Z)
    a = np.linalg.solve(m, w.T)
    if exact:
        model.encoder.mean.weight.data, model.encoder.mean.bias.data = a.copy(), -a @ b
        model.encoder.logvar.data = np.log(SIGMA2 / np.diag(m))
    else:  # shrunk means and too-wide variances: a loose bound
        model.encoder.mean.weight.data, model.encoder.mean.bias.data = 0.3 * a, -0.3 * a @ b
        model.encoder.logvar.data = np.log(SIGMA2 / np.diag(m)) + 1.5
    cov = w @ w.T + SIGMA2 * np.eye(D)

    def log_px(x):
        d = x - b
        return -0.5 * (D * math.log(2 * math.pi) + np.linalg.slogdet(cov)[1]
                       + np.einsum("ni,ij,nj->n", d, np.linalg.inv(cov), d))
    return model, w, log_px


def test_exact_posterior_gives_log_px_for_every_sample_and_k():
    """With q(z|x) = p(z|x), every importance weight equals p(x): zero variance, any k."""
    rng = np.random.default_rng(0)
    model, _, log_px = make_model(rng, exact=True)
    x = rng.normal(size=(5, D)) * 2
    lw = log_importance_weights(model, sg.tensor(x), k=7).numpy()
    assert lw.shape == (7, 5)
    np.testing.assert_allclose(lw, np.broadcast_to(log_px(x), lw.shape), rtol=1e-10)
    for k in (1, 10):
        np.testing.assert_allclose(iwae_bound(model, sg.tensor(x), k).numpy(), log_px(x),
                                   rtol=1e-10)


def elbo_closed_form(model, x, w):
    xt = sg.tensor(x)
    mu, logvar = model.encode(xt)
    trace = (np.exp(logvar.numpy()) * (w ** 2).sum(0)).sum(1)
    rec = gaussian_log_prob(xt, model.decoder(mu), math.log(SIGMA2)).numpy() - trace / (2 * SIGMA2)
    return rec - kl_normal_standard_normal(mu, logvar).numpy()


def test_iwae_increases_with_k_stays_below_log_px_and_equals_the_elbo_at_k1():
    rng = np.random.default_rng(1)
    model, w, log_px = make_model(rng, exact=False)
    x = rng.normal(size=(1, D)) * 2
    exact, elbo = log_px(x)[0], elbo_closed_form(model, x, w)[0]
    assert elbo < exact - 0.5  # a loose bound, so that the steps in k are visible
    reps = 4000
    xs = sg.tensor(np.repeat(x, reps, axis=0))
    sg.manual_seed(2)
    means, ses = [], []
    for k in (1, 4, 16, 64):
        est = iwae_bound(model, xs, k).numpy()
        means.append(est.mean())
        ses.append(est.std() / math.sqrt(reps))
    # k = 1: the ELBO in expectation
    assert abs(means[0] - elbo) < 4 * ses[0]
    for (m0, s0), (m1, s1) in zip(zip(means, ses), zip(means[1:], ses[1:])):
        assert m1 > m0 - 3 * math.hypot(s0, s1)  # non-decreasing, statistically
    assert means[-1] > means[0] + 10 * ses[0]   # and really improving
    assert all(m < exact + 4 * s for m, s in zip(means, ses))
    assert exact - means[-1] < 0.5 * (exact - elbo)  # closer to log p(x) than the ELBO


def test_chunking_draws_the_same_samples():
    rng = np.random.default_rng(3)
    model, _, _ = make_model(rng, exact=False)
    x = sg.tensor(rng.normal(size=(4, D)))
    sg.manual_seed(5)
    whole = log_importance_weights(model, x, k=10).numpy()
    sg.manual_seed(5)
    chunked = log_importance_weights(model, x, k=10, chunk=3).numpy()
    np.testing.assert_allclose(chunked, whole, rtol=1e-12)


def test_iwae_bound_gradcheck():
    rng = np.random.default_rng(4)
    model, _, _ = make_model(rng, exact=False)
    x = sg.tensor(rng.normal(size=(3, D)))

    def f(*_):
        sg.manual_seed(6)
        return iwae_bound(model, x, k=5).sum()
    gradcheck(f, list(model.parameters()), mode="projection")


def test_on_an_image_vae_and_over_batches():
    sg.manual_seed(0)
    model = VAE((1, 4, 4), z_dim=2, hidden=8)
    model.train()
    x = np.random.default_rng(5).uniform(size=(6, 1, 4, 4)).astype(np.float32)
    out = iwae_log_likelihood(model, sg.tensor(x), k=8, chunk=3)
    assert out.shape == (6,) and not out.requires_grad and model.training
    mean = evaluate_iwae(model, [(x[:4], None), (x[4:], None)], k=8)
    assert np.isfinite(mean) and mean < 0
    with pytest.raises(ValueError):
        log_importance_weights(model, sg.tensor(x), k=0)


@pytest.mark.skipif(not MNIST_DIR.is_dir(), reason=f"no local MNIST copy at {MNIST_DIR}")
def test_iwae_on_a_few_real_mnist_digits_is_above_the_elbo():
    """Untrained FC VAE on 32 real digits: L_64 >= ELBO estimate (a smoke test on real data)."""
    from scratchgen.data import MNIST
    from scratchgen.models import vae_tools

    x = MNIST(data_dir=MNIST_DIR, train=False).images[:32].astype(np.float32) / 255.0
    sg.manual_seed(0)
    model = VAE()
    l64 = evaluate_iwae(model, [x], k=64)
    elbo = -vae_tools.evaluate_loss(model, [x])["loss"]
    assert l64 > elbo
