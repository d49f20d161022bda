"""The GAN theory of the lecture notes, checked numerically through the library's losses.

* For a fixed generator the best discriminator is D*(x) = p_data(x) / (p_data(x) + p_g(x))
  (Goodfellow et al. 2014, Prop. 1), and a discriminator trained with the "bce" loss finds it.
* At D*, V(D*, G) = -log 4 + 2 JSD(p_data || p_g) (Goodfellow et al. 2014, Theorem 1), which is
  -log 4 when p_g = p_data and 0 when the supports are disjoint.
* The minimax generator loss saturates where D rejects the samples; the non-saturating one
  does not (Goodfellow et al. 2014, Sec. 3).
* DiracGAN (Mescheder et al. 2018, "Which Training Methods for GANs do actually Converge?",
  Sec. 2): unregularised gradient steps do not converge to the equilibrium; with R1 they do.

Densities are integrated with the trapezoid rule on fine grids; every tolerance is two-sided.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import scratchgen as sg
import scratchgen.functional as F
from scratchgen.losses.gan import discriminator_loss, generator_loss, r1_penalty

LOG4 = math.log(4.0)


def t64(a, requires_grad=False):
    return sg.tensor(np.asarray(a, dtype=np.float64), requires_grad=requires_grad)


def normal_logpdf(x, mean=0.0, std=1.0):
    return -0.5 * ((x - mean) / std) ** 2 - math.log(std * math.sqrt(2 * math.pi))


def laplace_logpdf(x, loc=0.0, scale=1.0):
    return -np.abs(x - loc) / scale - math.log(2 * scale)


def mixture_logpdf(x):
    """p_g for the trained-discriminator test: two bumps either side of p_data = N(0, 1)."""
    return np.logaddexp(normal_logpdf(x, -1.5, 0.5), normal_logpdf(x, 1.5, 0.7)) + math.log(0.5)


def uniform_logpdf(x, low, high):
    with np.errstate(divide="ignore"):
        return np.where((x >= low) & (x <= high), -math.log(high - low), -np.inf)


def normal_pdf(x, mean=0.0, std=1.0):
    return np.exp(normal_logpdf(x, mean, std))


def trapezoid(y, x):
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2)


def d_star_logit(log_p, log_q):
    """logit D* = log(D* / (1 - D*)) = log p_data - log p_g, which stays exact where D* itself
    rounds to 0 or 1; +-inf where only one density is positive."""
    with np.errstate(invalid="ignore"):
        return log_p - log_q


def value(logit, log_p, log_q, x):
    """V(D, G) = int p log D + q log(1 - D) dx for D = sigmoid(logit), with log D = -softplus(
    -logit), log(1 - D) = -softplus(logit), and 0 log 0 = 0 where a density vanishes."""
    p, q = np.exp(log_p), np.exp(log_q)
    with np.errstate(invalid="ignore"):
        term_p = np.where(p > 0, -p * np.logaddexp(0.0, -logit), 0.0)
        term_q = np.where(q > 0, -q * np.logaddexp(0.0, logit), 0.0)
    return trapezoid(term_p + term_q, x)


def jsd(log_p, log_q, x):
    """JSD(p || q) = KL(p || m)/2 + KL(q || m)/2, m = (p + q)/2, from its definition; each
    integrand p log(p/m) is taken as 0 where p = 0."""
    log_m = np.logaddexp(log_p, log_q) - math.log(2)

    def kl_integrand(log_a):
        a = np.exp(log_a)
        with np.errstate(invalid="ignore"):
            return np.where(a > 0, a * (log_a - log_m), 0.0)

    return 0.5 * trapezoid(kl_integrand(log_p), x) + 0.5 * trapezoid(kl_integrand(log_q), x)


def quantile_points(log_pdf, x, n):
    """n points at the quantiles (i + 1/2)/n of the density: a mean over them is a quadrature
    of the expectation under that density, so a batch-mean loss evaluates an integral."""
    y = np.exp(log_pdf(x))
    cdf = np.concatenate([[0.0], np.cumsum((y[1:] + y[:-1]) * np.diff(x) / 2)])
    cdf /= cdf[-1]
    return np.interp((np.arange(n) + 0.5) / n, cdf, x)


GRID = np.linspace(-25.0, 25.0, 500_001)   # Laplace mass beyond: e^-25

PAIRS = {
    "shifted and narrower": (normal_logpdf, lambda x: normal_logpdf(x, 1.5, 0.8)),
    "wider": (normal_logpdf, lambda x: normal_logpdf(x, 0.0, 2.0)),
    "bimodal p_g": (normal_logpdf, mixture_logpdf),
    "laplace vs normal": (laplace_logpdf, lambda x: normal_logpdf(x, 0.5, 1.0)),
}


# ---- 1. the optimal discriminator -----------------------------------------------------------

def _train_discriminator(logits_fn, params, sample_real, sample_fake, steps, lr, lr_late,
                         batch, rng):
    opt = sg.optim.Adam(params, lr=lr)
    for step in range(steps):
        if step == int(0.7 * steps):  # smaller steps at the end: less sampling noise in D
            for group in opt.param_groups:
                group["lr"] = lr_late
        loss = discriminator_loss(logits_fn(sample_real(batch, rng)),
                                  logits_fn(sample_fake(batch, rng)), "bce")
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_logistic_discriminator_reaches_d_star_for_two_gaussians():
    """p_data = N(0, 1), p_g = N(1.5, 0.8^2): log p_data/p_g is quadratic in x, so
    D(x) = sigmoid(a + b x + c x^2) contains D* and training on fresh samples finds its exact
    coefficients c = 1/(2 s^2) - 1/2, b = -mu/s^2, a = log s + mu^2/(2 s^2)."""
    mu, s = 1.5, 0.8
    rng = np.random.default_rng(0)
    w = t64(np.zeros(3), requires_grad=True)

    def logits(x):
        return (t64(np.stack([np.ones_like(x), x, x * x], axis=1)) * w).sum(axis=1)

    grid = np.linspace(-3.0, 4.5, 151)
    lp, lq = normal_logpdf(grid), normal_logpdf(grid, mu, s)
    grid = grid[np.minimum(lp, lq) > math.log(1e-3)]      # both above 1e-3: [-1.3, 3.45]
    d_star = 1 / (1 + np.exp(-d_star_logit(normal_logpdf(grid), normal_logpdf(grid, mu, s))))
    with sg.no_grad():
        untrained = F.sigmoid(logits(grid)).numpy()
    assert np.abs(untrained - d_star).max() > 0.45

    _train_discriminator(logits, [w], lambda n, r: r.normal(0, 1, n),
                         lambda n, r: r.normal(mu, s, n), steps=1500, lr=0.05, lr_late=0.01,
                         batch=512, rng=rng)
    with sg.no_grad():
        d = F.sigmoid(logits(grid)).numpy()
    assert np.abs(d - d_star).max() < 0.02          # measured 0.005
    exact = [math.log(s) + mu ** 2 / (2 * s * s), -mu / s ** 2, 1 / (2 * s * s) - 0.5]
    np.testing.assert_allclose(w.numpy(), exact, atol=0.1)


class MLP(sg.nn.Module):
    def __init__(self, width=32):
        super().__init__()
        self.l1 = sg.nn.Linear(1, width, dtype="float64")
        self.l2 = sg.nn.Linear(width, width, dtype="float64")
        self.l3 = sg.nn.Linear(width, 1, dtype="float64")

    def forward(self, x):
        return self.l3(F.tanh(self.l2(F.tanh(self.l1(x))))).reshape(-1)


def test_mlp_discriminator_reaches_d_star_against_a_bimodal_generator():
    """A small MLP trained with the bce loss on fresh samples of p_data = N(0, 1) and a
    two-bump p_g: its sigmoid output approaches p_data / (p_data + p_g) wherever both
    densities are above 0.02 (x in [-2.4, 2.4])."""
    sg.manual_seed(0)
    rng = np.random.default_rng(0)
    D = MLP()

    def logits(x):
        return D(t64(x[:, None]))

    def sample_fake(n, r):
        left = r.random(n) < 0.5
        return np.where(left, r.normal(-1.5, 0.5, n), r.normal(1.5, 0.7, n))

    grid = np.linspace(-2.5, 2.5, 51)
    p, q = normal_pdf(grid), np.exp(mixture_logpdf(grid))
    keep = np.minimum(p, q) > 0.02
    grid, d_star = grid[keep], (p / (p + q))[keep]
    with sg.no_grad():
        untrained = F.sigmoid(logits(grid)).numpy()
    assert np.abs(untrained - d_star).max() > 0.3      # measured 0.41

    _train_discriminator(logits, list(D.parameters()), lambda n, r: r.normal(0, 1, n),
                         sample_fake, steps=3000, lr=3e-3, lr_late=5e-4, batch=256, rng=rng)
    with sg.no_grad():
        d = F.sigmoid(logits(grid)).numpy()
    assert np.abs(d - d_star).max() < 0.05             # measured 0.023 (0.022-0.034 over seeds)


# ---- 2. V(D*, G) = -log 4 + 2 JSD -----------------------------------------------------------

@pytest.mark.parametrize("pair", list(PAIRS), ids=list(PAIRS))
def test_value_at_d_star_is_jsd(pair):
    lp_fn, lq_fn = PAIRS[pair]
    lp, lq = lp_fn(GRID), lq_fn(GRID)
    assert trapezoid(np.exp(lp), GRID) == pytest.approx(1.0, abs=1e-8)
    assert trapezoid(np.exp(lq), GRID) == pytest.approx(1.0, abs=1e-8)
    logit = d_star_logit(lp, lq)
    v = value(logit, lp, lq, GRID)
    j = jsd(lp, lq, GRID)
    assert 0.01 < j < math.log(2)
    assert v == pytest.approx(-LOG4 + 2 * j, abs=1e-9)
    # D* is the maximiser: any other discriminator does worse
    for delta in (0.3, -0.3, 0.5 * np.sin(GRID), 0.2 * GRID):
        assert value(logit + delta, lp, lq, GRID) < v - 1e-4


def test_value_is_minus_log4_when_pg_equals_pdata():
    for lp_fn, _ in PAIRS.values():
        lp = lp_fn(GRID)
        logit = d_star_logit(lp, lp)
        np.testing.assert_array_equal(logit, 0.0)           # D* = 1/2 everywhere
        # the Laplace kink costs the trapezoid rule h^2/12 of mass, ~1e-9
        assert value(logit, lp, lp, GRID) == pytest.approx(-LOG4, abs=1e-8)
        assert jsd(lp, lp, GRID) == pytest.approx(0.0, abs=1e-12)


def test_value_is_zero_for_disjoint_supports():
    """p_data = U[0, 1], p_g = U[2, 3]: D* = 1 on one support and 0 on the other, every
    term is 1 log 1 or 0 log 0, and JSD takes its largest value log 2."""
    x = np.arange(-1000, 4001) / 1000.0          # the interval ends lie on the grid
    lp, lq = uniform_logpdf(x, 0.0, 1.0), uniform_logpdf(x, 2.0, 3.0)
    assert value(d_star_logit(lp, lq), lp, lq, x) == 0.0
    # the trapezoid rule adds half a cell at each jump of a density: masses 1 + h
    assert jsd(lp, lq, x) == pytest.approx(math.log(2) * 1.001, rel=1e-12)


def test_value_rises_to_zero_as_gaussians_separate():
    """V(D*, G) for N(0, 1) vs N(m, 1) climbs from -log 4 to 0 as the overlap vanishes (and
    JSD to log 2: the generator is left without a gradient, the vanishing-gradient argument
    of Arjovsky & Bottou 2017)."""
    x = np.linspace(-15.0, 35.0, 500_001)
    lp = normal_logpdf(x)
    values, jsds = [], []
    for m in (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0):
        lq = normal_logpdf(x, m, 1.0)
        values.append(value(d_star_logit(lp, lq), lp, lq, x))
        jsds.append(jsd(lp, lq, x))
    np.testing.assert_allclose(values, -LOG4 + 2 * np.array(jsds), atol=1e-9)
    assert values[0] == pytest.approx(-LOG4, abs=1e-9)
    assert np.all(np.diff(values) > 0)
    assert -1e-6 < values[-1] <= 0.0


@pytest.mark.parametrize("pair", ["shifted and narrower", "bimodal p_g"])
def test_library_bce_loss_at_d_star_is_minus_the_value(pair):
    """discriminator_loss(kind="bce") = -V(D, G): on logits log(D*/(1 - D*)) = log p - log q
    at quantile points of p_data and p_g (a quadrature of both expectations) it gives
    log 4 - 2 JSD, and any other logits give more."""
    lp_fn, lq_fn = PAIRS[pair]
    n = 20_000
    xr = quantile_points(lp_fn, GRID, n)
    xf = quantile_points(lq_fn, GRID, n)

    def logit(x):
        return lp_fn(x) - lq_fn(x)

    loss = discriminator_loss(t64(logit(xr)), t64(logit(xf)), "bce").item()
    j = jsd(lp_fn(GRID), lq_fn(GRID), GRID)
    assert loss == pytest.approx(LOG4 - 2 * j, abs=1e-4)          # measured 1e-5
    for delta in (0.3, -0.3):
        worse = discriminator_loss(t64(logit(xr) + delta), t64(logit(xf) + delta), "bce").item()
        assert worse > loss + 1e-3


def test_value_from_samples_matches_jsd():
    """The same identity by Monte Carlo: -bce loss on samples, with D* logits, estimates
    -log 4 + 2 JSD within four standard errors."""
    rng = np.random.default_rng(1)
    n = 200_000
    xr, xf = rng.normal(0, 1, n), rng.normal(1.5, 0.8, n)

    def logit(x):
        return normal_logpdf(x) - normal_logpdf(x, 1.5, 0.8)

    v = -discriminator_loss(t64(logit(xr)), t64(logit(xf)), "bce").item()
    terms_r = -np.logaddexp(0, -logit(xr))       # log D*(x_r)
    terms_f = -np.logaddexp(0, logit(xf))        # log(1 - D*(x_f))
    se = math.sqrt(terms_r.var() / n + terms_f.var() / n)
    j = jsd(normal_logpdf(GRID), normal_logpdf(GRID, 1.5, 0.8), GRID)
    assert abs(v - (-LOG4 + 2 * j)) < 4 * se


# ---- 3. saturation --------------------------------------------------------------------------

def test_minimax_generator_loss_saturates_and_non_saturating_does_not():
    """Where D confidently rejects the samples (logit l << 0), d/dl log(1 - sigmoid(l)) =
    -sigmoid(l) ~ -e^l vanishes, while d/dl [-log sigmoid(l)] = -(1 - sigmoid(l)) ~ -1."""
    for l in (-5.0, -7.5, -10.0):
        x = t64([l], True)
        (g_mm,) = sg.grad(generator_loss(x, "minimax"), x)
        (g_ns,) = sg.grad(generator_loss(x, "non-saturating"), x)
        s = 1 / (1 + math.exp(-l))
        assert g_mm.item() == pytest.approx(-s, rel=1e-12)
        assert g_ns.item() == pytest.approx(-(1 - s), rel=1e-12)
        # both push the logit up (same fixed point), at rates (1 - s)/s = e^{-l} apart
        assert g_mm.item() < 0 and g_ns.item() < 0
        assert g_ns.item() / g_mm.item() == pytest.approx(math.exp(-l), rel=1e-9)
        assert g_ns.item() / g_mm.item() > 100


def test_saturation_reaches_the_generator_parameters():
    """The same through a generator G(z) = mu + z and a fixed logistic discriminator
    l(x) = 4 (1 - x) that rejects G's samples (mu = 4: l ~ -12)."""
    rng = np.random.default_rng(2)
    z = t64(rng.normal(0, 0.1, 64))
    mu = t64([4.0], True)
    logits = (1.0 - (mu + z)) * 4.0
    (g_mm,) = sg.grad(generator_loss(logits, "minimax"), mu)
    (g_ns,) = sg.grad(generator_loss((1.0 - (mu + z)) * 4.0, "non-saturating"), mu)
    s = 1 / (1 + np.exp(-4.0 * (1.0 - (4.0 + z.numpy()))))
    assert g_mm.item() == pytest.approx(4 * s.mean(), rel=1e-10)
    assert g_ns.item() == pytest.approx(4 * (1 - s).mean(), rel=1e-10)
    assert abs(g_mm.item()) < 1e-4 < 3.9 < g_ns.item()


# ---- 4. DiracGAN ----------------------------------------------------------------------------

def dirac_gan(steps, lr, g_kind, gamma=0.0, alternating=False, start=(1.0, 1.0)):
    """p_data = delta_0, G = theta (a point mass at theta), D(x) = psi x. D minimises the bce
    loss (plus R1 on the real point x = 0 when gamma > 0: grad_x D = psi, so gamma/2 psi^2),
    G its ``g_kind`` loss; plain gradient steps, simultaneous or alternating (D first).
    Returns the iterates (psi_k, theta_k), k = 0..steps, shape (steps + 1, 2)."""
    psi = t64([start[0]], True)
    theta = t64([start[1]], True)
    real = t64(np.zeros((1, 1)))

    def D(x):
        return (x * psi).reshape(-1)

    path = [(start[0], start[1])]
    for _ in range(steps):
        d_loss = discriminator_loss(D(real), D(theta.detach().reshape(1, 1)), "bce")
        if gamma:
            d_loss = d_loss + r1_penalty(D, real, gamma)
        (g_psi,) = sg.grad(d_loss, psi)
        if alternating:
            psi.data = psi.data - lr * g_psi.data
        (g_theta,) = sg.grad(generator_loss(D(theta.reshape(1, 1)), g_kind), theta)
        if not alternating:
            psi.data = psi.data - lr * g_psi.data
        theta.data = theta.data - lr * g_theta.data
        path.append((psi.item(), theta.item()))
    return np.array(path)


def test_dirac_gan_r1_is_gamma_half_psi_squared():
    psi = t64([0.7], True)
    r1 = r1_penalty(lambda x: (x * psi).reshape(-1), t64(np.zeros((1, 1))), gamma=3.0)
    assert r1.item() == pytest.approx(1.5 * 0.49, rel=1e-12)
    (g,) = sg.grad(r1, psi)
    assert g.item() == pytest.approx(3.0 * 0.7, rel=1e-12)


def test_dirac_gan_simultaneous_steps_spiral_out():
    """The paper's zero-sum game (G minimises -softplus(psi theta), the negative of D's loss):
    the gradient field (-theta s, psi s), s = sigmoid(psi theta), is orthogonal to (psi,
    theta), so a simultaneous step multiplies the squared radius by exactly 1 + lr^2 s^2 > 1."""
    lr = 0.1
    path = dirac_gan(2000, lr, "minimax")
    r2 = (path ** 2).sum(axis=1)
    s = 1 / (1 + np.exp(-path[:-1, 0] * path[:-1, 1]))
    np.testing.assert_allclose(r2[1:], r2[:-1] * (1 + lr ** 2 * s ** 2), rtol=1e-12)
    assert np.all(np.diff(r2) > 0)
    assert math.sqrt(r2[-1]) > 2 * math.sqrt(r2[0])          # measured 1.41 -> 3.23


def test_dirac_gan_alternating_steps_circle_without_converging():
    path = dirac_gan(2000, 0.1, "minimax", alternating=True)
    r = np.hypot(path[:, 0], path[:, 1])
    assert 0.9 * r[0] < r.min() and r.max() < 1.1 * r[0]      # measured 0.973 r0 .. 1.001 r0
    sign_changes = np.count_nonzero(np.diff(np.sign(path[:, 1])))
    assert sign_changes >= 10                                 # it keeps circling (28)


@pytest.mark.parametrize("start", [(0.05, 0.05), (1.0, 1.0)], ids=["from inside", "from outside"])
def test_dirac_gan_non_saturating_settles_on_a_cycle(start):
    """The non-saturating G loss does not help either. Near 0, sigmoid(t) ~ 1/2 + t/4, and a
    simultaneous step changes r^2 by about -lr (psi theta)^2 + lr^2 r^2 / 4; over a turn
    (psi theta)^2 averages r^4 / 8, so r^2 settles where the two balance, r^2 = 2 lr, from
    above and from below: a limit cycle, not the equilibrium."""
    lr = 0.1
    path = dirac_gan(4000, lr, "non-saturating", start=start)
    r = np.hypot(path[-200:, 0], path[-200:, 1])
    assert np.abs(r / math.sqrt(2 * lr) - 1).max() < 0.03      # measured within 0.8%


@pytest.mark.parametrize("alternating", [False, True], ids=["simultaneous", "alternating"])
def test_dirac_gan_with_r1_converges(alternating):
    """With R1, D's update gains -lr gamma psi: the Jacobian at (0, 0) becomes
    [[-gamma, -1/2], [1/2, 0]] with eigenvalues of negative real part, so (psi, theta) -> 0."""
    path = dirac_gan(2000, 0.1, "minimax", gamma=1.0, alternating=alternating)
    r = np.hypot(path[:, 0], path[:, 1])
    assert r[-1] < 1e-6 * r[0]                               # measured < 1e-34
    assert r[200] < 0.1 * r[0]                               # measured 0.003
