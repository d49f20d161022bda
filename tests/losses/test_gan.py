"""GAN losses and gradient penalties: values against their formulas written in NumPy, float64
first and second derivatives, numerical stability at saturated logits, and the penalties
checked on critics whose input gradient is known in closed form (a gradient check alone
cannot tell a per-pixel norm from a per-example one)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import scratchgen as sg
import scratchgen.functional as F
from scratchgen.losses.gan import (
    D_KINDS, G_KINDS, discriminator_loss, generator_loss, gradient_penalty, r1_penalty,
)
from scratchgen.testing import gradcheck, gradgradcheck
from scratchgen.testing import strategies as sgst


def t64(a, requires_grad=False):
    return sg.tensor(np.asarray(a, dtype=np.float64), requires_grad=requires_grad)


def np_softplus(x):
    return np.logaddexp(0.0, x)


# The formulas in NumPy, each written from its paper rather than from the library's code.
def np_d_loss(r, f, kind):
    if kind == "bce":            # -E log sigmoid(r) - E log(1 - sigmoid(f))
        return -np.mean(np.log(1 / (1 + np.exp(-r)))) - np.mean(np.log(1 - 1 / (1 + np.exp(-f))))
    if kind == "lsgan":          # Mao et al. eq. 2, a = 0, b = 1
        return 0.5 * np.mean((r - 1) ** 2) + 0.5 * np.mean(f ** 2)
    if kind == "hinge":
        return np.mean(np.maximum(0, 1 - r)) + np.mean(np.maximum(0, 1 + f))
    if kind == "wasserstein":
        return np.mean(f) - np.mean(r)
    raise AssertionError(kind)


def np_g_loss(f, kind):
    d = 1 / (1 + np.exp(-f))
    if kind == "minimax":
        return np.mean(np.log(1 - d))
    if kind == "non-saturating":
        return -np.mean(np.log(d))
    if kind == "lsgan":          # c = 1
        return 0.5 * np.mean((f - 1) ** 2)
    if kind in ("hinge", "wasserstein"):
        return -np.mean(f)
    raise AssertionError(kind)


# ---- loss values ----------------------------------------------------------------------------

def test_kind_lists():
    assert set(D_KINDS) == {"bce", "lsgan", "hinge", "wasserstein"}
    assert set(G_KINDS) == {"minimax", "non-saturating", "lsgan", "hinge", "wasserstein"}


@pytest.mark.parametrize("kind", D_KINDS)
def test_discriminator_loss_matches_formula(kind):
    rng = np.random.default_rng(0)
    # batches of different sizes: each expectation is its own mean
    r, f = rng.normal(0, 2, size=7), rng.normal(0, 2, size=5)
    got = discriminator_loss(t64(r), t64(f), kind).item()
    assert got == pytest.approx(np_d_loss(r, f, kind), rel=1e-12, abs=1e-12)
    # D's output may come as (N, 1), as from a Linear layer
    got2 = discriminator_loss(t64(r[:, None]), t64(f[:, None]), kind).item()
    assert got2 == pytest.approx(got, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("kind", G_KINDS)
def test_generator_loss_matches_formula(kind):
    rng = np.random.default_rng(1)
    f = rng.normal(0, 2, size=6)
    got = generator_loss(t64(f), kind).item()
    assert got == pytest.approx(np_g_loss(f, kind), rel=1e-12, abs=1e-12)


def test_defaults_and_known_values():
    z = t64(np.zeros(4))
    assert discriminator_loss(z, z).item() == pytest.approx(2 * np.log(2))   # default bce
    assert generator_loss(z).item() == pytest.approx(np.log(2))              # non-saturating
    assert generator_loss(z, "minimax").item() == pytest.approx(-np.log(2))
    one = t64(np.ones(3))
    # hinge margins: a real logit >= 1 and a fake one <= -1 cost nothing
    assert discriminator_loss(one * 2.0, -one * 3.0, "hinge").item() == 0.0
    assert discriminator_loss(one, -one, "lsgan").item() == pytest.approx(0.5)


def test_output_is_float32_for_float32_logits():
    r = sg.tensor(np.array([0.5, -1.5], np.float32))
    for kind in D_KINDS:
        assert discriminator_loss(r, r, kind).dtype == np.float32
    for kind in G_KINDS:
        assert generator_loss(r, kind).dtype == np.float32


def test_unknown_kind_names_it():
    x = t64([0.0, 1.0])
    with pytest.raises(ValueError, match="'softmax'"):
        discriminator_loss(x, x, "softmax")
    with pytest.raises(ValueError, match="'wgan'"):
        generator_loss(x, "wgan")
    # the two lists differ: "bce" names D's loss, "minimax"/"non-saturating" G's
    with pytest.raises(ValueError, match="'bce'"):
        generator_loss(x, "bce")
    with pytest.raises(ValueError, match="'non-saturating'"):
        discriminator_loss(x, x, "non-saturating")


# ---- gradients ------------------------------------------------------------------------------

def _logits(n):
    # hinge has kinks at +-1; relu(1 - l) and relu(1 + l) are smooth elsewhere
    return sgst.arrays((n,), -3.0, 3.0, avoid=(-1.0, 1.0), margin=0.05)


SETTINGS = settings(max_examples=12, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.mark.parametrize("kind", D_KINDS)
@SETTINGS
@given(data=st.data())
def test_discriminator_loss_gradients(kind, data):
    n_r, n_f = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 6))
    r = t64(data.draw(_logits(n_r)), True)
    f = t64(data.draw(_logits(n_f)), True)
    fn = lambda a, b: discriminator_loss(a, b, kind)  # noqa: E731
    gradcheck(fn, [r, f])
    gradgradcheck(fn, [r, f])


@pytest.mark.parametrize("kind", G_KINDS)
@SETTINGS
@given(data=st.data())
def test_generator_loss_gradients(kind, data):
    f = t64(data.draw(_logits(data.draw(st.integers(1, 6)))), True)
    fn = lambda a: generator_loss(a, kind)  # noqa: E731
    gradcheck(fn, [f])
    gradgradcheck(fn, [f])


def test_gradients_match_closed_forms():
    """d/dl of each per-example term, divided by the batch size."""
    rng = np.random.default_rng(2)
    n = 5
    l = rng.normal(0, 2, size=n)
    s = 1 / (1 + np.exp(-l))
    expected = {
        "minimax": -s / n, "non-saturating": -(1 - s) / n, "lsgan": (l - 1) / n,
        "hinge": -np.ones(n) / n, "wasserstein": -np.ones(n) / n,
    }
    for kind, want in expected.items():
        x = t64(l, True)
        (g,) = sg.grad(generator_loss(x, kind), x)
        np.testing.assert_allclose(g.numpy(), want, rtol=1e-12, atol=1e-15)


# ---- numerical stability --------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_huge_logits_give_finite_losses_and_gradients(dtype):
    big = np.array([1000.0, -1000.0, 500.0, -750.0])
    for kind in D_KINDS:
        r = sg.tensor(big, requires_grad=True, dtype=dtype)
        f = sg.tensor(big[::-1].copy(), requires_grad=True, dtype=dtype)
        loss = discriminator_loss(r, f, kind)
        gr, gf = sg.grad(loss, [r, f])
        assert np.isfinite(loss.item()), kind
        assert np.isfinite(gr.numpy()).all() and np.isfinite(gf.numpy()).all(), kind
    for kind in G_KINDS:
        f = sg.tensor(big, requires_grad=True, dtype=dtype)
        loss = generator_loss(f, kind)
        (gf,) = sg.grad(loss, f)
        assert np.isfinite(loss.item()), kind
        assert np.isfinite(gf.numpy()).all(), kind


def test_bce_at_huge_logits_equals_its_asymptote():
    """softplus(l) -> max(l, 0): a confident right answer costs 0, a confident wrong one |l|
    (where log(sigmoid(l)) in floating point would give log(0) = -inf)."""
    p, m = t64([1000.0, 1000.0]), t64([-1000.0, -1000.0])
    assert discriminator_loss(p, m, "bce").item() == 0.0
    assert discriminator_loss(m, p, "bce").item() == pytest.approx(2000.0, rel=1e-15)
    assert generator_loss(m, "non-saturating").item() == pytest.approx(1000.0, rel=1e-15)
    assert generator_loss(p, "non-saturating").item() == 0.0
    assert generator_loss(p, "minimax").item() == pytest.approx(-1000.0, rel=1e-15)
    # the gradient of a rejected sample: 1 - sigmoid(-1000) = 1 per example (non-saturating),
    # sigmoid(-1000) = 0 (minimax, saturated)
    x = t64([-1000.0, -1000.0], True)
    (g,) = sg.grad(generator_loss(x, "non-saturating"), x)
    np.testing.assert_allclose(g.numpy(), [-0.5, -0.5])
    (g,) = sg.grad(generator_loss(x, "minimax"), x)
    assert np.abs(g.numpy()).max() < 1e-300


# ---- gradient penalty (WGAN-GP) -------------------------------------------------------------

def linear_critic(w):
    """D(x) = <w, x> per example: grad_x D = w everywhere."""
    return lambda x: (x * w).reshape(x.shape[0], -1).sum(axis=1)


def quadratic_critic(x):
    """D(x) = ||x||^2 / 2 per example: grad_x D = x."""
    return (x * x).reshape(x.shape[0], -1).sum(axis=1) * 0.5


def test_gradient_penalty_of_linear_critic_is_exact_and_independent_of_alpha():
    rng = np.random.default_rng(3)
    w = rng.normal(size=(3, 4, 5)) * 0.3
    real, fake = t64(rng.normal(size=(4, 3, 4, 5))), t64(rng.normal(size=(4, 3, 4, 5)))
    want = 10.0 * (np.linalg.norm(w) - 1.0) ** 2
    D = linear_critic(t64(w))
    for alpha in (np.zeros(4), np.ones(4), rng.uniform(size=4)):
        got = gradient_penalty(D, real, fake, alpha=t64(alpha)).item()
        assert got == pytest.approx(want, rel=1e-9)
    assert gradient_penalty(D, real, fake).item() == pytest.approx(want, rel=1e-9)
    assert gradient_penalty(D, real, fake, lam=2.5).item() == pytest.approx(want / 4, rel=1e-9)
    # a unit-norm gradient costs nothing
    D1 = linear_critic(t64(w / np.linalg.norm(w)))
    assert gradient_penalty(D1, real, fake).item() == pytest.approx(0.0, abs=1e-9)


def test_gradient_penalty_uses_one_alpha_per_example_and_the_whole_example_norm():
    """With D(x) = ||x||^2/2, grad = x^, so the penalty is lam mean_i (||x^_i|| - 1)^2 with
    x^_i = a_i x_i + (1 - a_i) x~_i. N = C = 3, so an alpha broadcast along the channel axis
    instead of the batch axis gives a different number too."""
    rng = np.random.default_rng(4)
    n, c, h, w = 3, 3, 4, 4
    r, f = rng.normal(size=(n, c, h, w)), rng.normal(size=(n, c, h, w)) * 0.3
    a = np.array([0.1, 0.55, 0.9])
    lam = 10.0
    got = gradient_penalty(quadratic_critic, t64(r), t64(f), lam=lam, alpha=t64(a)).item()

    def per_example(x_hat):
        return lam * np.mean((np.linalg.norm(x_hat.reshape(n, -1), axis=1) - 1) ** 2)

    ab = a.reshape(n, 1, 1, 1)
    want = per_example(ab * r + (1 - ab) * f)
    assert got == pytest.approx(want, rel=1e-10)

    wrong = {
        "alpha per pixel": per_example(
            (lambda A: A * r + (1 - A) * f)(rng.uniform(size=r.shape))),
        "alpha along channels": per_example(a.reshape(1, c, 1, 1) * r
                                            + (1 - a.reshape(1, c, 1, 1)) * f),
        # the norm over channels at each pixel, averaged over pixels
        "norm per pixel": lam * np.mean(
            (np.linalg.norm(ab * r + (1 - ab) * f, axis=1) - 1) ** 2),
        # the norm of each entry alone, i.e. (|g| - 1)^2 averaged over all entries
        "norm per entry": lam * np.mean((np.abs(ab * r + (1 - ab) * f) - 1) ** 2),
    }
    for name, value in wrong.items():
        assert abs(value - got) > 1e-2 * abs(got), name


def test_gradient_penalty_default_alpha_is_uniform_and_one_per_example():
    rng = np.random.default_rng(5)
    n = 16
    r, f = rng.normal(size=(n, 2, 3, 3)), rng.normal(size=(n, 2, 3, 3))
    seen = []

    def D(x):
        seen.append(x.numpy().copy())
        return quadratic_critic(x)

    gradient_penalty(D, t64(r), t64(f))
    (x_hat,) = seen
    alpha = (x_hat - f) / (r - f)            # x^ = a x + (1 - a) x~ solved for a, entry-wise
    alpha = alpha.reshape(n, -1)
    np.testing.assert_allclose(alpha, alpha[:, :1] * np.ones_like(alpha), rtol=1e-6, atol=1e-6)
    a = alpha[:, 0]
    assert (a >= 0).all() and (a <= 1).all()
    assert np.std(a) > 0.1                   # drawn per example, not one for the batch


def test_gradient_penalty_trains_d_only_and_checks_shapes():
    rng = np.random.default_rng(6)
    w = t64(rng.normal(size=(2, 3)), True)
    real, fake = t64(rng.normal(size=(4, 2, 3)), True), t64(rng.normal(size=(4, 2, 3)), True)
    gp = gradient_penalty(linear_critic(w), real, fake)
    gw, gr, gf = sg.grad(gp, [w, real, fake], allow_unused=True)
    assert gr is None and gf is None
    wn = w.numpy()
    # d/dw lam (||w|| - 1)^2 = 2 lam (||w|| - 1) w / ||w||
    np.testing.assert_allclose(gw.numpy(), 20 * (np.linalg.norm(wn) - 1) * wn / np.linalg.norm(wn),
                               rtol=1e-9)
    with pytest.raises(ValueError, match="same shape"):
        gradient_penalty(linear_critic(w), real, t64(rng.normal(size=(3, 2, 3))))
    with pytest.raises(ValueError, match="one value per example"):
        gradient_penalty(linear_critic(w), real, fake, alpha=t64(rng.uniform(size=(4, 2, 3))))


# ---- R1 -------------------------------------------------------------------------------------

def test_r1_of_linear_and_quadratic_critics():
    rng = np.random.default_rng(7)
    w = rng.normal(size=(2, 3, 3))
    x = rng.normal(size=(5, 2, 3, 3))
    gamma = 3.0
    got = r1_penalty(linear_critic(t64(w)), t64(x), gamma=gamma).item()
    assert got == pytest.approx(gamma / 2 * np.sum(w ** 2), rel=1e-12)
    got = r1_penalty(quadratic_critic, t64(x), gamma=gamma).item()
    assert got == pytest.approx(gamma / 2 * np.mean(np.sum(x.reshape(5, -1) ** 2, axis=1)),
                                rel=1e-12)
    # the default gamma is the paper's 10
    assert r1_penalty(quadratic_critic, t64(x)).item() == pytest.approx(got * 10 / gamma)


# ---- penalties are differentiable w.r.t. a convolutional critic's weights --------------------

class ConvCritic(sg.nn.Module):
    def __init__(self, act):
        super().__init__()
        self.c1 = sg.nn.Conv2d(2, 3, 3, padding=1, dtype="float64")
        self.c2 = sg.nn.Conv2d(3, 1, 3, stride=2, dtype="float64")
        self.act = act

    def forward(self, x):
        y = self.c2(self.act(self.c1(x)))
        return y.reshape(x.shape[0], -1).sum(axis=1)


def _finite_difference(fn, params, h=1e-5):
    """Central differences of the scalar fn() w.r.t. every entry of every parameter."""
    out = []
    for p in params:
        g = np.zeros(p.shape)
        flat = p.data.reshape(-1)
        for j in range(flat.size):
            orig = flat[j]
            flat[j] = orig + h
            up = fn().item()
            flat[j] = orig - h
            down = fn().item()
            flat[j] = orig
            g.reshape(-1)[j] = (up - down) / (2 * h)
        out.append(g)
    return out


@pytest.mark.parametrize("act", [F.tanh, F.softplus, lambda v: F.leaky_relu(v, 0.2)],
                         ids=["tanh", "softplus", "leaky_relu"])
@pytest.mark.parametrize("penalty", ["gp", "r1"])
def test_penalty_gradients_wrt_conv_weights_match_finite_differences(penalty, act):
    """The double backward through two convolutions: d penalty / d weights from autograd
    against central differences of the penalty's value."""
    sg.manual_seed(8)
    rng = np.random.default_rng(8)
    D = ConvCritic(act)
    real = t64(rng.normal(size=(3, 2, 5, 5)))
    fake = t64(rng.normal(size=(3, 2, 5, 5)))
    alpha = t64([0.2, 0.5, 0.8])
    if penalty == "gp":
        fn = lambda: gradient_penalty(D, real, fake, lam=10.0, alpha=alpha)  # noqa: E731
    else:
        fn = lambda: r1_penalty(D, real, gamma=10.0)  # noqa: E731
    names, params = zip(*D.named_parameters())
    analytic = [np.zeros(p.shape) if g is None else g.numpy()
                for p, g in zip(params, sg.grad(fn(), list(params), allow_unused=True))]
    numeric = _finite_difference(fn, params)
    for name, a, n in zip(names, analytic, numeric):
        np.testing.assert_allclose(a, n, rtol=1e-5, atol=1e-7, err_msg=name)
    grads = dict(zip(names, analytic))
    # not trivially satisfied: both layers' weights get a real gradient; the last bias
    # shifts D by a constant and so leaves every input gradient alone
    assert np.abs(grads["c1.weight"]).max() > 1e-3 and np.abs(grads["c2.weight"]).max() > 1e-3
    assert np.abs(grads["c2.bias"]).max() == 0.0
