"""Autoencoder, beta-VAE, capacity-annealed beta-VAE, InfoVAE / MMD-VAE: end-to-end gradient
checks of each loss, and each objective checked against its definition."""
from __future__ import annotations

import numpy as np
import pytest

import scratchgen as sg
from scratchgen.losses.mmd import mmd_unbiased
from scratchgen.models import vae_tools
from scratchgen.models.autoencoder import Autoencoder, ConvAutoencoder
from scratchgen.models.beta_vae import BetaVAE, CapacityVAE
from scratchgen.models.info_vae import InfoVAE, MMDVAE
from scratchgen.models.steps import TrainStep
from scratchgen.models.vae import VAE
from scratchgen.optim import Adam
from scratchgen.testing import gradcheck


def seeded(model, x, key="loss", seed=11, **kw):
    def f(*_params):
        sg.manual_seed(seed)
        return model.loss(x, **kw)[key]
    return f


def x64(seed, *shape):
    return sg.tensor(np.random.default_rng(seed).uniform(size=shape), dtype="float64")


def params(model):
    return list(model.parameters())


# ---- gradient checks -------------------------------------------------------------------------

@pytest.mark.parametrize("arch", ["fc", "conv"])
def test_autoencoder_loss_gradcheck(arch):
    kw = dict(channels=(2, 3)) if arch == "conv" else {}
    model = Autoencoder((1, 8, 8), z_dim=2, arch=arch, hidden=5, **kw).to("float64")
    gradcheck(seeded(model, x64(0, 3, 1, 8, 8)), params(model), mode="projection")


def test_beta_vae_loss_gradcheck():
    model = BetaVAE((1, 4, 4), z_dim=3, beta=4.0, hidden=6).to("float64")
    gradcheck(seeded(model, x64(1, 4, 1, 4, 4)), params(model), mode="projection")


def test_capacity_vae_loss_gradcheck():
    model = CapacityVAE((1, 4, 4), z_dim=3, gamma=20.0, c_max=5.0, capacity_steps=10,
                        hidden=6).to("float64")
    # C = 0.3 nats sits well below the KL of this batch: |KL - C| is smooth here
    gradcheck(seeded(model, x64(2, 4, 1, 4, 4), capacity=0.3), params(model), mode="projection")


@pytest.mark.parametrize("kernel", ["imq", "rbf"])
@pytest.mark.parametrize("alpha", [1.0, 0.0])
def test_info_vae_loss_gradcheck(kernel, alpha):
    model = InfoVAE((1, 4, 4), z_dim=2, alpha=alpha, lambda_=50.0, kernel=kernel,
                    hidden=6).to("float64")
    gradcheck(seeded(model, x64(3, 5, 1, 4, 4)), params(model), mode="projection")


def test_conv_info_vae_loss_gradcheck():
    model = MMDVAE((1, 8, 8), z_dim=2, arch="conv", channels=(2, 2), hidden=4,
                   lambda_=10.0).to("float64")
    gradcheck(seeded(model, x64(4, 3, 1, 8, 8)), params(model), mode="projection")


# ---- the objectives are what the papers say --------------------------------------------------

def test_autoencoder_is_deterministic_and_has_the_vae_shapes():
    sg.manual_seed(0)
    ae, vae = Autoencoder(), VAE()
    assert [p.shape for p in ae.parameters()] == [
        p.shape for n, p in vae.named_parameters() if "fc22" not in n]
    x = sg.rand(2, 1, 28, 28)
    a, b = ae.loss(x)["loss"].item(), ae.loss(x)["loss"].item()
    assert a == b  # no noise anywhere
    assert ae.encode(x).shape == (2, 20) and ae.reconstruct(x).shape == (2, 1, 28, 28)
    conv = ConvAutoencoder((1, 16, 16), z_dim=2, channels=(4, 8), hidden=8)
    assert conv.encode(sg.rand(3, 1, 16, 16)).shape == (3, 2)
    # the tools take an autoencoder too: its code is z itself
    path = vae_tools.interpolate(conv, sg.rand(1, 1, 16, 16), sg.rand(1, 1, 16, 16), steps=4)
    assert path.shape == (1, 4, 1, 16, 16)


def test_beta_vae_with_beta_one_is_the_vae():
    x = x64(5, 3, 1, 4, 4)
    sg.manual_seed(0)
    beta = BetaVAE((1, 4, 4), z_dim=3, beta=1.0, hidden=6).to("float64")
    vae = VAE((1, 4, 4), z_dim=3, hidden=6).to("float64")
    vae.load_state_dict(beta.state_dict())
    sg.manual_seed(1)
    lb = beta.loss(x)
    sg.manual_seed(1)
    lv = vae.loss(x)
    assert lb["loss"].item() == pytest.approx(lv["loss"].item(), rel=1e-12)
    beta.beta = 4.0
    sg.manual_seed(1)
    l4 = beta.loss(x)
    assert l4["loss"].item() == pytest.approx(lv["recon"].item() + 4 * lv["kl"].item(), rel=1e-12)
    assert l4["neg_elbo"].item() == pytest.approx(lv["loss"].item(), rel=1e-12)


def test_capacity_schedule_advances_with_train_steps_and_is_saved():
    sg.manual_seed(0)
    model = CapacityVAE((1, 4, 4), z_dim=2, gamma=100.0, c_max=8.0, capacity_steps=4, hidden=6)
    opt = Adam(model.parameters(), lr=1e-3)
    x = np.random.default_rng(6).uniform(size=(8, 1, 4, 4)).astype(np.float32)
    seen = [TrainStep(model, opt)(x)["capacity"] for _ in range(6)]
    assert seen == [0.0, 2.0, 4.0, 6.0, 8.0, 8.0]
    state = model.state_dict()
    assert int(state["num_steps"]) == 6
    fresh = CapacityVAE((1, 4, 4), z_dim=2, gamma=100.0, c_max=8.0, capacity_steps=4, hidden=6)
    fresh.load_state_dict(state)
    assert fresh.capacity() == 8.0
    sg.manual_seed(2)
    terms = model.loss(sg.tensor(x), capacity=1.0)
    want = terms["recon"].item() + 100.0 * abs(terms["kl"].item() - 1.0)
    assert terms["loss"].item() == pytest.approx(want, rel=1e-5)


def test_info_vae_objective_terms():
    x = x64(7, 6, 1, 4, 4)
    sg.manual_seed(0)
    model = InfoVAE((1, 4, 4), z_dim=2, alpha=0.25, lambda_=10.0, hidden=6).to("float64")
    assert model.kl_weight == 0.75 and model.mmd_weight == 9.25
    sg.manual_seed(3)
    t = model.loss(x)
    want = t["recon"].item() + 0.75 * t["kl"].item() + 9.25 * t["mmd"].item()
    assert t["loss"].item() == pytest.approx(want, rel=1e-12)
    # the MMD is between the batch's codes and as many prior samples, drawn after them
    sg.manual_seed(3)
    z = model.elbo_terms(x)["z"]
    zp = sg.randn(z.shape, dtype="float64")
    assert t["mmd"].item() == pytest.approx(mmd_unbiased(z, zp, "imq").item(), rel=1e-12)
    # alpha = 0, lambda = 1: the plain VAE (the MMD term has weight 0)
    vae_like = InfoVAE((1, 4, 4), z_dim=2, alpha=0.0, lambda_=1.0, hidden=6).to("float64")
    sg.manual_seed(4)
    t = vae_like.loss(x)
    assert t["loss"].item() == pytest.approx(t["neg_elbo"].item(), rel=1e-12)
    mmd = MMDVAE((1, 4, 4), z_dim=2, lambda_=7.0, hidden=6)
    assert mmd.kl_weight == 0.0 and mmd.mmd_weight == 7.0
    with pytest.raises(ValueError):
        InfoVAE(kernel="laplace")


def test_mmd_vae_pulls_the_aggregate_posterior_to_the_prior():
    """300 steps of MMD-VAE on 8x8 digits: the codes spread out to about the prior's scale
    (posterior means with a standard deviation near 1 per unit, centred) while the
    reconstruction improves."""
    from scratchgen.data import Digits

    sg.manual_seed(0)
    x = Digits(train=True, size=8).images[:128]
    model = MMDVAE((1, 8, 8), z_dim=2, hidden=32, lambda_=10.0)
    opt = Adam(model.parameters(), lr=3e-3)
    first = TrainStep(model, opt)(x)
    recent = []
    for i in range(300):
        out = TrainStep(model, opt)(x)
        if i >= 280:
            recent.append(out)
    assert np.mean([r["recon"] for r in recent]) < first["recon"] - 10
    codes = vae_tools.latent_code(model, x).numpy()
    assert 0.6 < codes.std(axis=0).min() and codes.std(axis=0).max() < 1.6
    assert np.abs(codes.mean(axis=0)).max() < 0.4


# ---- the example scripts run end to end (tiny settings) --------------------------------------

def _load_example(name):
    import importlib

    return importlib.import_module(f"scratchgen.recipes.{name}")


def test_ae_vs_vae_example(tmp_path):
    summary = _load_example("ae_vs_vae_latent").main(
        ["--epochs", "1", "--size", "8", "--out", str(tmp_path)])
    for name in ("latent_ae.png", "latent_vae.png", "manifold_ae.png", "manifold_vae.png",
                 "samples_ae.png", "samples_vae.png", "summary.json"):
        assert (tmp_path / name).is_file(), name
    assert set(summary["models"]) == {"ae", "vae"}


@pytest.mark.parametrize("variant", ["beta", "capacity"])
def test_beta_vae_example(tmp_path, variant):
    summary = _load_example("beta_vae").main(
        ["--epochs", "1", "--size", "8", "--z-dim", "3", "--variant", variant,
         "--out", str(tmp_path)])
    for name in ("traversal.png", "samples.png", "reconstructions.png", "summary.json"):
        assert (tmp_path / name).is_file(), name
    assert len(summary["kl_per_unit"]) == 3


def test_info_vae_example(tmp_path):
    summary = _load_example("info_vae").main(
        ["--epochs", "1", "--size", "8", "--z-dim", "2", "--out", str(tmp_path)])
    for name in ("samples.png", "reconstructions.png", "traversal.png", "latent.png",
                 "summary.json"):
        assert (tmp_path / name).is_file(), name
    assert np.isfinite(summary["aggregate_mmd_test"])
