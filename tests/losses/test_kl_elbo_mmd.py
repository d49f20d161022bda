"""KL, ELBO terms and MMD: gradient checks, and the math checked against closed forms and
Monte Carlo (a gradient check cannot catch a wrong formula)."""
from __future__ import annotations

import math

import numpy as np
import pytest

import scratchgen as sg
from scratchgen.losses.elbo import (
    CapacitySchedule, bernoulli_reconstruction, capacity_objective, elbo, gaussian_reconstruction,
    linear_capacity, negative_elbo, reconstruction_log_likelihood,
)
from scratchgen.losses.kl import (
    bernoulli_log_prob_with_logits, gaussian_log_prob, kl_normal_normal,
    kl_normal_standard_normal, reparameterize, standard_normal_log_prob,
)
from scratchgen.losses.mmd import (
    imq_kernel, kernel_scale, mmd_unbiased, pairwise_squared_distances, rbf_kernel,
)
from scratchgen.testing import gradcheck


def t64(a, requires_grad=False):
    return sg.tensor(np.asarray(a, dtype=np.float64), requires_grad=requires_grad)


def rand64(rng, *shape, scale=1.0, requires_grad=True):
    return t64(rng.normal(size=shape) * scale, requires_grad)


# ---- KL -------------------------------------------------------------------------------------

def test_kl_standard_formula_and_zero_at_prior():
    mu = t64([[0.5, -1.0], [0.0, 0.0]])
    logvar = t64([[math.log(2.0), 0.3], [0.0, 0.0]])
    kl = kl_normal_standard_normal(mu, logvar).numpy()
    s2 = np.exp(logvar.numpy())
    expected = -0.5 * (1 + logvar.numpy() - mu.numpy() ** 2 - s2).sum(1)
    np.testing.assert_allclose(kl, expected, rtol=1e-12)
    assert kl[1] == 0.0
    mean = kl_normal_standard_normal(mu, logvar, reduction="mean").item()
    assert mean == pytest.approx(kl.mean())
    assert kl_normal_standard_normal(mu, logvar, reduction="sum").item() == pytest.approx(kl.sum())


def test_kl_standard_matches_monte_carlo():
    """KL(q || p) = E_q[log q(z) - log p(z)]: closed form vs 400k samples."""
    rng = np.random.default_rng(1)
    mu = np.array([0.7, -1.2, 0.1])
    logvar = np.array([-0.5, 0.8, -2.0])
    n = 400_000
    z = mu + np.exp(0.5 * logvar) * rng.standard_normal((n, 3))
    zt = t64(z)
    log_q = gaussian_log_prob(zt, t64(np.broadcast_to(mu, z.shape)),
                              t64(np.broadcast_to(logvar, z.shape))).numpy()
    log_p = standard_normal_log_prob(zt).numpy()
    d = log_q - log_p
    closed = kl_normal_standard_normal(t64(mu[None]), t64(logvar[None])).item()
    assert abs(d.mean() - closed) < 4 * d.std() / math.sqrt(n)


def test_kl_normal_normal_matches_monte_carlo_and_reduces_to_standard():
    rng = np.random.default_rng(2)
    mq, lq = np.array([0.3, -0.4]), np.array([-0.3, 0.5])
    mp, lp = np.array([-0.5, 0.2]), np.array([0.4, -0.6])
    n = 400_000
    z = mq + np.exp(0.5 * lq) * rng.standard_normal((n, 2))
    full = lambda a: t64(np.broadcast_to(a, z.shape))  # noqa: E731
    d = (gaussian_log_prob(t64(z), full(mq), full(lq))
         - gaussian_log_prob(t64(z), full(mp), full(lp))).numpy()
    closed = kl_normal_normal(t64(mq[None]), t64(lq[None]), t64(mp[None]), t64(lp[None])).item()
    assert abs(d.mean() - closed) < 4 * d.std() / math.sqrt(n)
    zero = t64(np.zeros((1, 2)))
    assert kl_normal_normal(t64(mq[None]), t64(lq[None]), zero, zero).item() == pytest.approx(
        kl_normal_standard_normal(t64(mq[None]), t64(lq[None])).item(), rel=1e-12)
    assert kl_normal_normal(t64(mq[None]), t64(lq[None]), t64(mq[None]), t64(lq[None])).item() \
        == pytest.approx(0.0, abs=1e-14)


def test_kl_gradients():
    rng = np.random.default_rng(3)
    mu, lv = rand64(rng, 3, 4), rand64(rng, 3, 4, scale=0.5)
    mp, lp = rand64(rng, 3, 4), rand64(rng, 3, 4, scale=0.5)
    gradcheck(lambda a, b: kl_normal_standard_normal(a, b), [mu, lv])
    gradcheck(lambda a, b, c, d: kl_normal_normal(a, b, c, d), [mu, lv, mp, lp])


# ---- log-densities and the reparameterization ----------------------------------------------

def test_gaussian_log_prob_matches_formula_fixed_and_learned_variance():
    rng = np.random.default_rng(4)
    x, m = rng.normal(size=(2, 5)), rng.normal(size=(2, 5))
    for lv in (0.0, -1.3):
        got = gaussian_log_prob(t64(x), t64(m), lv).numpy()
        want = (-0.5 * (np.log(2 * np.pi) + lv + (x - m) ** 2 / np.exp(lv))).sum(1)
        np.testing.assert_allclose(got, want, rtol=1e-12)
        # a scalar Tensor log-variance (a learned one shared by all pixels) gives the same
        np.testing.assert_allclose(gaussian_log_prob(t64(x), t64(m), t64(lv)).numpy(), want,
                                   rtol=1e-12)
    lv = rng.normal(size=(2, 5))
    want = (-0.5 * (np.log(2 * np.pi) + lv + (x - m) ** 2 / np.exp(lv))).sum(1)
    np.testing.assert_allclose(gaussian_log_prob(t64(x), t64(m), t64(lv)).numpy(), want, rtol=1e-12)


def test_bernoulli_log_prob_with_logits_is_stable_and_correct():
    logits = t64([[-3.0, 0.0, 2.0, 40.0, -40.0]])
    x = t64([[0.0, 1.0, 0.25, 1.0, 0.0]])
    got = bernoulli_log_prob_with_logits(x, logits).numpy()
    l, t = logits.numpy()[0, :3], x.numpy()[0, :3]
    p = 1 / (1 + np.exp(-l))
    want = (t * np.log(p) + (1 - t) * np.log1p(-p)).sum()
    want += 2 * -np.log1p(np.exp(-40.0))  # the saturated entries, both predicted right
    np.testing.assert_allclose(got, [want], rtol=1e-10)
    assert np.isfinite(bernoulli_log_prob_with_logits(t64([[0.0]]), t64([[1000.0]])).numpy()).all()


def test_reparameterize_std_is_exp_half_logvar():
    """std = exp(0.5 logvar): for logvar = log 4 the variance is 4, not 16 (which a codebase
    using exp(logvar) as the standard deviation would give)."""
    sg.manual_seed(5)
    n = 200_000
    mu = sg.full((n, 2), 1.5, dtype="float64")
    logvar = sg.full((n, 2), math.log(4.0), dtype="float64")
    z = reparameterize(mu, logvar).numpy()
    assert z.mean() == pytest.approx(1.5, abs=0.02)
    # var of the sample variance for a Gaussian: 2 sigma^4 / n  -> se ~ 0.009
    assert z.var() == pytest.approx(4.0, abs=0.06)


def test_reparameterize_with_given_noise_and_gradient():
    rng = np.random.default_rng(6)
    mu, lv = rand64(rng, 3, 2), rand64(rng, 3, 2)
    eps = t64(rng.normal(size=(3, 2)))
    z = reparameterize(mu, lv, eps).numpy()
    np.testing.assert_allclose(z, mu.numpy() + np.exp(0.5 * lv.numpy()) * eps.numpy())
    gradcheck(lambda a, b: reparameterize(a, b, eps), [mu, lv])


def test_log_prob_gradients():
    rng = np.random.default_rng(7)
    x, m, lv = rand64(rng, 2, 3), rand64(rng, 2, 3), rand64(rng, 2, 3)
    gradcheck(lambda a, b, c: gaussian_log_prob(a, b, c), [x, m, lv])
    lv0 = rand64(rng, scale=0.5)  # a scalar shared log-variance
    gradcheck(lambda b, c: gaussian_log_prob(x.detach(), b, c), [m, lv0])
    target = t64(rng.uniform(size=(2, 3)))
    gradcheck(lambda a: bernoulli_log_prob_with_logits(target, a), [rand64(rng, 2, 3)])
    gradcheck(lambda a: standard_normal_log_prob(a), [rand64(rng, 2, 3)])


# ---- ELBO terms ------------------------------------------------------------------------------

def test_elbo_terms_and_beta():
    rng = np.random.default_rng(8)
    x = t64(rng.uniform(size=(4, 1, 2, 2)))
    logits = rand64(rng, 4, 1, 2, 2)
    lp = bernoulli_reconstruction(x, logits)
    assert lp.shape == (4,)
    np.testing.assert_allclose(lp.numpy(), reconstruction_log_likelihood(x, logits).numpy())
    np.testing.assert_allclose(
        gaussian_reconstruction(x, logits, -0.5).numpy(),
        reconstruction_log_likelihood(x, logits, "gaussian", -0.5).numpy())
    kl = t64(rng.uniform(size=4))
    np.testing.assert_allclose(elbo(lp, kl, beta=4.0).numpy(), lp.numpy() - 4 * kl.numpy())
    assert negative_elbo(lp, kl).item() == pytest.approx(-(lp.numpy() - kl.numpy()).mean())
    gradcheck(lambda a, b: negative_elbo(a, b, beta=2.5), [rand64(rng, 4), rand64(rng, 4)])
    with pytest.raises(ValueError):
        reconstruction_log_likelihood(x, logits, "poisson")
    with pytest.raises(ValueError):
        elbo(lp, kl[:2])


def test_capacity_schedule_and_objective():
    sched = CapacitySchedule(c_max=25.0, num_steps=100)
    assert [sched(s) for s in (0, 50, 100, 1000)] == [0.0, 12.5, 25.0, 25.0]
    assert linear_capacity(10, 5.0, 0) == 5.0
    lp = t64([-100.0, -120.0])
    kl = t64([10.0, 14.0])
    got = capacity_objective(lp, kl, gamma=1000.0, capacity=5.0).item()
    assert got == pytest.approx(110.0 + 1000.0 * 7.0)
    rng = np.random.default_rng(9)
    a, b = rand64(rng, 5), t64(rng.uniform(1, 3, size=5), requires_grad=True)
    gradcheck(lambda u, v: capacity_objective(u, v, 10.0, 0.5), [a, b])


# ---- MMD -------------------------------------------------------------------------------------

def test_kernels_match_their_formulas():
    rng = np.random.default_rng(10)
    x, y = rng.normal(size=(3, 4)), rng.normal(size=(5, 4))
    d2 = ((x[:, None] - y[None]) ** 2).sum(-1)
    np.testing.assert_allclose(pairwise_squared_distances(t64(x), t64(y)).numpy(), d2, rtol=1e-10)
    c = 2 * 4 * 1.5 ** 2
    assert kernel_scale(4, 1.5) == c
    np.testing.assert_allclose(imq_kernel(t64(x), t64(y), 1.5).numpy(), c / (c + d2), rtol=1e-10)
    np.testing.assert_allclose(rbf_kernel(t64(x), t64(y), 1.5).numpy(), np.exp(-d2 / c), rtol=1e-10)


def test_mmd_matches_u_statistic_written_out():
    rng = np.random.default_rng(11)
    x, y = rng.normal(size=(6, 3)), rng.normal(size=(4, 3)) + 1
    for kernel, kfun in (("imq", imq_kernel), ("rbf", rbf_kernel)):
        kxx = kfun(t64(x), t64(x)).numpy()
        kyy = kfun(t64(y), t64(y)).numpy()
        kxy = kfun(t64(x), t64(y)).numpy()
        want = ((kxx.sum() - np.trace(kxx)) / (6 * 5) + (kyy.sum() - np.trace(kyy)) / (4 * 3)
                - 2 * kxy.mean())
        assert mmd_unbiased(t64(x), t64(y), kernel).item() == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("kernel", ["imq", "rbf"])
def test_mmd_is_unbiased_for_identical_distributions(kernel):
    """E[MMD_u^2] = 0 when P = Q: the mean over many independent draws is within 3 standard
    errors of zero -- while the biased V-statistic (diagonal kept) is clearly positive."""
    rng = np.random.default_rng(12)
    draws, m, d = 1500, 8, 3
    values, biased = [], []
    for _ in range(draws):
        x, y = t64(rng.normal(size=(m, d))), t64(rng.normal(size=(m, d)))
        values.append(mmd_unbiased(x, y, kernel).item())
        k = {"imq": imq_kernel, "rbf": rbf_kernel}[kernel]
        biased.append((k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean()).item())
    values, biased = np.array(values), np.array(biased)
    se = values.std(ddof=1) / math.sqrt(draws)
    assert abs(values.mean()) < 3 * se
    assert biased.mean() > 10 * biased.std(ddof=1) / math.sqrt(draws)


def test_mmd_separates_different_distributions():
    rng = np.random.default_rng(13)
    x = t64(rng.normal(size=(200, 2)))
    y = t64(rng.normal(size=(200, 2)) * 0.3 + 1.0)
    same = t64(rng.normal(size=(200, 2)))
    for kernel in ("imq", "rbf"):
        assert mmd_unbiased(x, y, kernel).item() > 20 * abs(mmd_unbiased(x, same, kernel).item())


@pytest.mark.parametrize("kernel", ["imq", "rbf"])
def test_mmd_gradient(kernel):
    rng = np.random.default_rng(14)
    gradcheck(lambda a, b: mmd_unbiased(a, b, kernel), [rand64(rng, 5, 3), rand64(rng, 4, 3)])


def test_mmd_errors():
    x = t64(np.zeros((1, 2)))
    with pytest.raises(ValueError):
        mmd_unbiased(x, x)
    with pytest.raises(ValueError):
        mmd_unbiased(t64(np.zeros((3, 2))), t64(np.zeros((3, 2))), kernel="laplace")
