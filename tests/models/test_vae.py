"""The VAE (fc and conv; Bernoulli and Gaussian decoders) and the capabilities in vae_tools.

Beyond gradient checks: the ELBO of a linear-Gaussian VAE (probabilistic PCA) is compared with
the model's exact log-likelihood -- never above it, equal to it at the exact posterior, and
short of it by exactly KL(q(z|x) || p(z|x)).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import scratchgen as sg
import scratchgen.functional as F
from scratchgen import nn
from scratchgen.losses.kl import gaussian_log_prob, kl_normal_normal, kl_normal_standard_normal
from scratchgen.models import vae_tools
from scratchgen.models.steps import TrainStep
from scratchgen.models.vae import ConvVAE, VAE
from scratchgen.optim import Adam
from scratchgen.testing import gradcheck


def seeded_loss(model, x, key="loss", seed=123):
    """The loss as a function of the parameters with the noise held fixed (reseeded each call)."""
    def f(*_params):
        sg.manual_seed(seed)
        return model.loss(x)[key]
    return f


def x64(rng, *shape):
    return sg.tensor(rng.uniform(size=shape), dtype="float64")


# ---- gradient checks, end to end -------------------------------------------------------------

@pytest.mark.parametrize("likelihood, logvar", [("bernoulli", 0.0), ("gaussian", -1.0),
                                                ("gaussian", "learned")])
def test_fc_vae_loss_gradcheck(likelihood, logvar):
    rng = np.random.default_rng(0)
    model = VAE((1, 4, 4), z_dim=3, hidden=6, likelihood=likelihood,
                decoder_logvar=logvar).to("float64")
    x = x64(rng, 5, 1, 4, 4)
    gradcheck(seeded_loss(model, x), list(model.parameters()), mode="projection")


def test_conv_vae_loss_gradcheck():
    rng = np.random.default_rng(1)
    model = ConvVAE((1, 8, 8), z_dim=2, hidden=5, channels=(2, 3)).to("float64")
    x = x64(rng, 3, 1, 8, 8)
    gradcheck(seeded_loss(model, x), list(model.parameters()), mode="projection")


def test_vae_loss_gradcheck_wrt_input():
    rng = np.random.default_rng(2)
    model = VAE((1, 3, 3), z_dim=2, hidden=4).to("float64")
    x = sg.tensor(rng.uniform(size=(2, 1, 3, 3)), dtype="float64", requires_grad=True)
    gradcheck(lambda xx: (sg.manual_seed(1), model.loss(xx)["loss"])[1], [x])


# ---- the loss is the formula -----------------------------------------------------------------

def test_loss_is_bce_sum_plus_kl_per_image():
    rng = np.random.default_rng(3)
    model = VAE((1, 4, 4), z_dim=3, hidden=6).to("float64")
    x = x64(rng, 4, 1, 4, 4)
    sg.manual_seed(7)
    terms = model.loss(x)
    sg.manual_seed(7)  # the same eps, by hand
    mu, logvar = model.encode(x)
    eps = sg.randn(mu.shape, dtype="float64")
    z = mu + (logvar * 0.5).exp() * eps
    logits = model.decoder_output(z)
    bce = F.binary_cross_entropy_with_logits(logits, x, reduction="none").numpy()
    bce = bce.sum(axis=(1, 2, 3))
    m, lv = mu.numpy(), logvar.numpy()
    kl = -0.5 * (1 + lv - m ** 2 - np.exp(lv)).sum(1)
    assert terms["recon"].item() == pytest.approx(bce.mean(), rel=1e-12)
    assert terms["kl"].item() == pytest.approx(kl.mean(), rel=1e-12)
    assert terms["loss"].item() == pytest.approx((bce + kl).mean(), rel=1e-12)


def test_shapes_and_pytorch_example_layout():
    model = VAE()  # 784-400-20
    names = [n for n, _ in model.named_parameters()]
    for layer in ("fc1", "fc21", "fc22", "fc3", "fc4"):
        assert any(f".{layer}.weight" in n for n in names)
    assert model.encoder.fc1.weight.shape == (400, 784)
    assert model.decoder.fc4.weight.shape == (784, 400)
    x = sg.rand(3, 1, 28, 28)
    out, mu, logvar = model(x)
    assert out.shape == (3, 1, 28, 28) and mu.shape == logvar.shape == (3, 20)
    assert model.decode(mu).shape == (3, 1, 28, 28)
    s = model.sample(5)
    assert s.shape == (5, 1, 28, 28) and 0 <= float(s.numpy().min()) and float(s.numpy().max()) <= 1
    assert model.reconstruct(x).shape == (3, 1, 28, 28)
    conv = ConvVAE((1, 16, 16), z_dim=4, channels=(8, 16), hidden=32)
    out, mu, _ = conv(sg.rand(2, 1, 16, 16))
    assert out.shape == (2, 1, 16, 16) and mu.shape == (2, 4)
    with pytest.raises(ValueError, match="divisible"):
        ConvVAE((1, 10, 10), channels=(8, 16))
    with pytest.raises(ValueError):
        VAE(likelihood="poisson")
    with pytest.raises(ValueError):
        VAE(decoder_logvar="learned")  # needs a Gaussian decoder


def test_train_steps_reduce_the_loss_on_digits():
    from scratchgen.data import Digits

    sg.manual_seed(0)
    x = Digits(train=True, size=8).images[:128]
    model = VAE((1, 8, 8), z_dim=4, hidden=32)
    opt = Adam(model.parameters(), lr=3e-3)
    first = TrainStep(model, opt)(x)["loss"]
    for _ in range(40):
        last = TrainStep(model, opt)(x)
    assert np.isfinite(last["loss"]) and last["loss"] < first - 5
    assert last["loss"] == pytest.approx(last["recon"] + last["kl"], rel=1e-5)


def test_learned_decoder_variance_is_trained():
    sg.manual_seed(0)
    rng = np.random.default_rng(4)
    model = VAE((4,), z_dim=2, hidden=8, likelihood="gaussian", decoder_logvar="learned")
    x = rng.normal(size=(64, 4)).astype(np.float32) * 0.1
    opt = Adam(model.parameters(), lr=0.05)
    for _ in range(40):
        TrainStep(model, opt)(x)
    assert model.decoder_logvar.item() < -1.0  # the data's scale is 0.1: sigma^2 shrinks


def test_state_dict_round_trip(tmp_path):
    sg.manual_seed(0)
    model = VAE((1, 4, 4), z_dim=2, hidden=5, likelihood="gaussian", decoder_logvar="learned")
    sg.save(model.state_dict(), tmp_path / "vae.npz")
    other = VAE((1, 4, 4), z_dim=2, hidden=5, likelihood="gaussian", decoder_logvar="learned")
    other.load_state_dict(sg.load(tmp_path / "vae.npz"))
    z = sg.randn(3, 2)
    np.testing.assert_array_equal(model.decode(z).numpy(), other.decode(z).numpy())


def test_runs_on_each_device(device):
    sg.manual_seed(0)
    model = ConvVAE((1, 8, 8), z_dim=3, channels=(4, 8), hidden=16).to(device)
    x = sg.rand(4, 1, 8, 8, device=device)
    opt = Adam(model.parameters(), lr=1e-3)
    out = TrainStep(model, opt)(x)
    assert np.isfinite(out["loss"])
    assert model.sample(2).device == sg.device(device)
    assert vae_tools.interpolate(model, x[:1], x[1:2], steps=3).shape == (1, 3, 1, 8, 8)


# ---- the ELBO of a linear-Gaussian VAE vs the exact likelihood (probabilistic PCA) -----------

D, Z, SIGMA2 = 4, 2, 0.5


class LinearGaussianEncoder(nn.Module):
    """q(z|x) = N(A x + c, diag exp(logvar)), the posterior family that contains the exact one."""

    def __init__(self) -> None:
        super().__init__()
        self.mean = nn.Linear(D, Z)
        self.logvar = nn.Parameter(np.zeros(Z))

    def forward(self, x):
        mu = self.mean(x)
        return mu, self.logvar.unsqueeze(0).broadcast_to(mu.shape)


def linear_gaussian_vae(rng):
    """x = W z + b + N(0, sigma^2 I) with orthogonal columns of W, so that the exact posterior
    N(M^-1 W^T (x - b), sigma^2 M^-1), M = W^T W + sigma^2 I, is diagonal."""
    q, _ = np.linalg.qr(rng.normal(size=(D, Z)))
    w = q * np.array([2.0, 0.7])
    b = rng.normal(size=D)
    model = VAE((D,), z_dim=Z, likelihood="gaussian", decoder_logvar=math.log(SIGMA2),
                encoder=LinearGaussianEncoder(), decoder=nn.Linear(Z, D)).to("float64")
    model.decoder.weight.data = w.copy()
    model.decoder.bias.data = b.copy()
    return model, w, b


def exact_log_px(x, w, b):
    cov = w @ w.T + SIGMA2 * np.eye(D)
    d = x - b
    _, logdet = np.linalg.slogdet(cov)
    return -0.5 * (D * math.log(2 * math.pi) + logdet + np.einsum("ni,ij,nj->n", d,
                                                                  np.linalg.inv(cov), d))


def set_exact_posterior(model, w, b):
    m = w.T @ w + SIGMA2 * np.eye(Z)
    a = np.linalg.solve(m, w.T)
    model.encoder.mean.weight.data = a.copy()
    model.encoder.mean.bias.data = -a @ b
    model.encoder.logvar.data = np.log(SIGMA2 / np.diag(m))


def analytic_elbo(model, x, w):
    """E_q log p(x|z) in closed form (Gaussian decoder, linear in z) minus the closed-form KL."""
    xt = sg.tensor(x)
    mu, logvar = model.encode(xt)
    mean = model.decoder(mu)
    trace = (np.exp(logvar.numpy()) * (w ** 2).sum(0)).sum(1)   # tr(W Sigma W^T)
    rec = gaussian_log_prob(xt, mean, math.log(SIGMA2)).numpy() - trace / (2 * SIGMA2)
    return rec - kl_normal_standard_normal(mu, logvar).numpy()


def test_linear_gaussian_elbo_equals_log_px_at_the_exact_posterior():
    rng = np.random.default_rng(5)
    model, w, b = linear_gaussian_vae(rng)
    set_exact_posterior(model, w, b)
    x = rng.normal(size=(6, D)) * 2
    np.testing.assert_allclose(analytic_elbo(model, x, w), exact_log_px(x, w, b), rtol=1e-10)
    # the model's own one-sample ELBO, averaged over many draws for one x
    xs = np.repeat(x[:1], 20000, axis=0)
    sg.manual_seed(0)
    t = model.elbo_terms(sg.tensor(xs))
    e = (t["log_px"] - t["kl"]).numpy()
    assert abs(e.mean() - exact_log_px(x[:1], w, b)[0]) < 4 * e.std() / math.sqrt(len(e))


def test_linear_gaussian_elbo_below_log_px_by_the_posterior_kl():
    """log p(x) - ELBO(q) = KL(q(z|x) || p(z|x)) >= 0 for every encoder q."""
    rng = np.random.default_rng(6)
    model, w, b = linear_gaussian_vae(rng)
    x = rng.normal(size=(8, D)) * 2
    m = w.T @ w + SIGMA2 * np.eye(Z)
    a = np.linalg.solve(m, w.T)
    post_mu = (x - b) @ a.T
    post_lv = np.broadcast_to(np.log(SIGMA2 / np.diag(m)), post_mu.shape)
    for trial in range(5):  # random encoders, none of them exact
        model.encoder.mean.weight.data = rng.normal(size=(Z, D))
        model.encoder.mean.bias.data = rng.normal(size=Z)
        model.encoder.logvar.data = rng.normal(size=Z)
        elbo = analytic_elbo(model, x, w)
        log_px = exact_log_px(x, w, b)
        assert (elbo < log_px).all()
        mu, lv = model.encode(sg.tensor(x))
        gap = kl_normal_normal(mu, lv, sg.tensor(post_mu), sg.tensor(np.ascontiguousarray(post_lv)))
        np.testing.assert_allclose(log_px - elbo, gap.numpy(), rtol=1e-9)
        if trial == 0:  # the sampled ELBO agrees with the analytic one
            sg.manual_seed(1)
            t = model.elbo_terms(sg.tensor(np.repeat(x[:1], 20000, axis=0)))
            e = (t["log_px"] - t["kl"]).numpy()
            assert abs(e.mean() - elbo[0]) < 4 * e.std() / math.sqrt(len(e))


# ---- capabilities (vae_tools) ----------------------------------------------------------------

@pytest.fixture
def small_vae():
    sg.manual_seed(0)
    return VAE((1, 8, 8), z_dim=3, hidden=16)


def test_interpolation_endpoints_are_the_decodes_of_the_endpoints(small_vae):
    rng = np.random.default_rng(7)
    xa = rng.uniform(size=(2, 1, 8, 8)).astype(np.float32)
    xb = rng.uniform(size=(2, 1, 8, 8)).astype(np.float32)
    ra, rb = small_vae.reconstruct(xa).numpy(), small_vae.reconstruct(xb).numpy()
    for method in ("linear", "slerp"):
        path = vae_tools.interpolate(small_vae, xa, xb, steps=6, method=method)
        assert path.shape == (2, 6, 1, 8, 8)
        np.testing.assert_allclose(path.numpy()[:, 0], ra, atol=1e-6)
        np.testing.assert_allclose(path.numpy()[:, -1], rb, atol=1e-6)
    with pytest.raises(ValueError):
        vae_tools.interpolate(small_vae, xa, xb, method="cubic")


def test_lerp_and_slerp():
    z0 = sg.tensor([[3.0, 0.0], [1.0, 1.0]])
    z1 = sg.tensor([[0.0, 1.0], [2.0, 2.0]])  # second pair parallel: slerp falls back to lerp
    ts = [0.0, 0.5, 1.0]
    lin = vae_tools.lerp(z0, z1, ts).numpy()
    np.testing.assert_allclose(lin[0, 1], [1.5, 0.5])
    sph = vae_tools.slerp(z0, z1, ts).numpy()
    np.testing.assert_allclose(sph[:, 0], z0.numpy(), atol=1e-6)
    np.testing.assert_allclose(sph[:, -1], z1.numpy(), atol=1e-6)
    # the midpoint of a quarter circle: direction at 45 degrees, norm halfway between 3 and 1
    np.testing.assert_allclose(sph[0, 1], [2.0 / math.sqrt(2), 2.0 / math.sqrt(2)], atol=1e-6)
    np.testing.assert_allclose(sph[1], lin[1], atol=1e-6)


def test_latent_traversal_varies_one_unit(small_vae):
    grid = vae_tools.latent_traversal(small_vae, dims=[0, 2], steps=5)
    assert grid.shape == (2, 5, 1, 8, 8)
    # the middle column decodes the base point (here the prior mean, 0) in every row
    zero = small_vae.decode(sg.zeros(1, 3)).numpy()[0]
    np.testing.assert_allclose(grid.numpy()[:, 2], np.stack([zero, zero]), atol=1e-6)
    x = np.random.default_rng(8).uniform(size=(1, 1, 8, 8)).astype(np.float32)
    assert vae_tools.latent_traversal(small_vae, x=x, steps=3).shape == (3, 3, 1, 8, 8)
    grid = vae_tools.latent_traversal(small_vae, z=[0.5, 0.0, 0.0], dims=[1], values=[-3, 3])
    assert grid.shape == (1, 2, 1, 8, 8)
    with pytest.raises(ValueError):
        vae_tools.latent_traversal(small_vae, dims=[3])


def test_attribute_vector_and_editing(small_vae):
    rng = np.random.default_rng(9)
    xa = rng.uniform(size=(5, 1, 8, 8)).astype(np.float32)
    xb = rng.uniform(size=(7, 1, 8, 8)).astype(np.float32) * 0.2
    v = vae_tools.attribute_vector(small_vae, xa, xb)
    za = vae_tools.latent_code(small_vae, xa).numpy()
    zb = vae_tools.latent_code(small_vae, xb).numpy()
    np.testing.assert_allclose(v.numpy(), za.mean(0) - zb.mean(0), atol=1e-6)
    out = vae_tools.edit(small_vae, xb[:2], v, alphas=(-1, 0, 1, 2))
    assert out.shape == (2, 4, 1, 8, 8)
    np.testing.assert_allclose(out.numpy()[:, 1], small_vae.reconstruct(xb[:2]).numpy(), atol=1e-6)
    # alpha = 1 decodes code(x) + v exactly
    want = small_vae.decode(sg.tensor(zb[:2] + v.numpy())).numpy()
    np.testing.assert_allclose(out.numpy()[:, 2], want, atol=1e-6)


def test_tools_restore_train_mode_and_record_no_graph(small_vae):
    small_vae.train()
    s = small_vae.sample(3)
    assert small_vae.training and not s.requires_grad
    small_vae.eval()
    vae_tools.reconstruct(small_vae, np.zeros((1, 1, 8, 8), np.float32))
    assert not small_vae.training
    act = vae_tools.unit_activity(small_vae, np.random.default_rng(0).uniform(
        size=(20, 1, 8, 8)).astype(np.float32))
    assert act.shape == (3,) and (act >= 0).all()


def test_evaluate_loss_weights_batches_by_size(small_vae):
    rng = np.random.default_rng(10)
    x = rng.uniform(size=(10, 1, 8, 8)).astype(np.float32)
    sg.manual_seed(3)
    whole = vae_tools.evaluate_loss(small_vae, [x])
    sg.manual_seed(3)
    parts = vae_tools.evaluate_loss(small_vae, [(x[:7], None), (x[7:], None)])
    for k in ("loss", "recon", "kl"):
        assert parts[k] == pytest.approx(whole[k], rel=1e-5)


# ---- the example script runs end to end (tiny settings) --------------------------------------

def _load_example(name):
    import importlib

    return importlib.import_module(f"scratchgen.recipes.{name}")


def test_vae_example_runs_and_writes_its_pictures(tmp_path):
    example = _load_example("vae_mnist")
    summary = example.main(["--epochs", "1", "--size", "8", "--z-dim", "2", "--hidden", "32",
                            "--iwae-k", "4", "--iwae-images", "50", "--out", str(tmp_path)])
    for name in ("samples.png", "reconstructions.png", "interpolations.png",
                 "interpolations_slerp.png", "traversal.png", "editing_thickness.png",
                 "editing_slant.png", "manifold.png", "vae.npz", "summary.json"):
        assert (tmp_path / name).is_file(), name
    assert len(summary["epochs"]) == 1 and np.isfinite(summary["epochs"][0]["test_loss"])
    assert summary["iwae"]["log_likelihood"] >= summary["iwae"]["elbo_same_images"] - 5.0
    model, _ = example.load_vae(tmp_path / "vae.npz")
    assert model.sample(2).shape == (2, 1, 8, 8)
