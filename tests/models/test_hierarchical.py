"""The VDVAE-style hierarchical VAE: end-to-end float64 gradient check, the per-layer KLs
against their sum and against closed forms, and the importance-weighted bound."""
from __future__ import annotations

import math

import numpy as np
import pytest

import scratchgen as sg
from scratchgen.losses.kl import gaussian_log_prob, kl_normal_standard_normal
from scratchgen.models.hierarchical_vae import HierarchicalVAE, HierarchicalVAETrainStep
from scratchgen.testing import gradcheck


def _t(a) -> sg.Tensor:
    return sg.tensor(np.asarray(a, dtype=np.float64))


def _tiny(layers="1x1,2x1,4x1", top_prior="learned", perturb=0.3, seed=0) -> HierarchicalVAE:
    sg.manual_seed(seed)
    m = HierarchicalVAE(in_channels=1, image_size=4, resolutions=(4, 2, 1), layers=layers,
                        width=4, mid=3, z_channels=2, enc_blocks=1, dec_blocks=1,
                        top_prior=top_prior).to("float64")
    if perturb:
        # move away from the zero-initialized prior heads, so every path carries gradient
        rng = np.random.default_rng(seed + 100)
        for p in m.parameters():
            p.data += perturb * rng.standard_normal(p.shape)
    return m


def _binary(n: int, seed: int = 1) -> sg.Tensor:
    return _t((np.random.default_rng(seed).random((n, 1, 4, 4)) > 0.5).astype(np.float64))


def _eps(m: HierarchicalVAE, n: int, seed: int = 2) -> list[sg.Tensor]:
    rng = np.random.default_rng(seed)
    return [_t(rng.standard_normal((n, m.config["z_channels"], st["resolution"],
                                    st["resolution"])))
            for st in m.forward(_binary(n))[1]]


def test_loss_gradcheck_end_to_end():
    m = _tiny()
    x = _binary(3)
    eps = _eps(m, 3)
    params = list(m.parameters())
    assert m.n_layers == 3
    gradcheck(lambda *ps: m.loss(x, eps)[0], params, mode="projection", n_projections=4,
              atol=1e-6, rtol=1e-5)


def test_per_layer_kl_sums_to_the_kl_term():
    m = _tiny()
    x, eps = _binary(5), _eps(m, 5)
    loss, st = m.loss(x, eps)
    layer_sum = sum(k.item() for k in st["kl_layers"])
    assert len(st["kl_layers"]) == 3
    assert st["kl"].item() == pytest.approx(layer_sum, rel=1e-12)
    assert loss.item() == pytest.approx(st["recon"].item() + layer_sum, rel=1e-12)
    assert all(k.item() >= 0 for k in st["kl_layers"])


def test_at_initialization_every_prior_is_standard_normal():
    """VDVAE zero-initializes the prior's last layer: p(z_l | z_>l) = N(0, I) at init, so each
    KL_l is the closed-form KL(q || N(0, I))."""
    m = _tiny(perturb=0.0)
    x, eps = _binary(4), _eps(m, 4)
    _, st = m.loss(x, eps)
    for layer in st["layers"]:
        assert not np.any(layer["mu_p"].numpy()) and not np.any(layer["logvar_p"].numpy())
        np.testing.assert_allclose(
            layer["kl"].numpy(),
            kl_normal_standard_normal(layer["mu_q"], layer["logvar_q"]).numpy(), rtol=1e-12)


def test_one_layer_with_standard_prior_is_a_plain_vae():
    m = _tiny(layers="1x1", top_prior="standard")
    x = _binary(4)
    _, st = m.loss(x, _eps(m, 4))
    (layer,) = st["layers"]
    np.testing.assert_allclose(
        st["kl"].numpy(), kl_normal_standard_normal(layer["mu_q"], layer["logvar_q"],
                                                    reduction="mean").numpy(), rtol=1e-12)


def test_analytic_kl_matches_monte_carlo_for_the_top_layer():
    """KL_top = E_q[log q(z) - log p(z)]: the top prior does not depend on samples, so many
    samples for one image estimate the same KL the model computes in closed form."""
    m = _tiny()
    x1 = _binary(1, seed=5)
    n = 4000
    xs = x1.broadcast_to((n, 1, 4, 4))
    with sg.no_grad():
        _, layers = m.forward(xs)
    top = layers[0]
    z = top["z"]
    log_q = gaussian_log_prob(z, top["mu_q"], top["logvar_q"]).numpy()
    log_p = gaussian_log_prob(z, top["mu_p"], top["logvar_p"]).numpy()
    mc = (log_q - log_p).mean()
    se = (log_q - log_p).std() / math.sqrt(n)
    analytic = top["kl"].numpy()[0]
    assert abs(mc - analytic) < 4 * se + 1e-9


def test_log_weights_average_to_the_elbo_and_iwae_tightens():
    m = _tiny()
    x = _binary(2, seed=7)
    sg.manual_seed(11)
    with sg.no_grad():
        lw = m.log_weights(x, 2000).numpy()                 # (k, N)
        elbos = []
        for _ in range(100):
            loss, _ = m.loss(x[0:1])
            elbos.append(-loss.item())
    assert lw.shape == (2000, 2)
    # E_q[log w] = ELBO (analytic KLs there, sampled densities here)
    se = lw[:, 0].std() / math.sqrt(2000) + np.std(elbos) / math.sqrt(100)
    assert abs(lw[:, 0].mean() - np.mean(elbos)) < 4 * se
    iw1 = m.iwae_bound(x, k=1)
    iw100 = m.iwae_bound(x, k=100)
    assert iw100 > lw.mean() and iw100 > iw1 - 0.5
    assert iw100 <= 0.0                                      # log p(x) of binary data is <= 0


def test_sample_reconstruct_and_a_train_step():
    m = _tiny(perturb=0.0)
    with sg.no_grad():
        s = m.sample(6).numpy()
        r = m.reconstruct(_binary(3)).numpy()
        cold = m.sample(2, temperature=0.5)
    assert s.shape == (6, 1, 4, 4) and r.shape == (3, 1, 4, 4) and cold.shape == (2, 1, 4, 4)
    assert s.min() >= 0 and s.max() <= 1
    step = HierarchicalVAETrainStep(m, lr=1e-2)
    x = _binary(8, seed=9)
    first = step(x)["loss"]
    for _ in range(30):
        out = step(x)
    assert out["loss"] < first
    assert {"kl_0", "kl_1", "kl_2", "recon", "kl"} <= set(out)


def test_bad_configurations():
    with pytest.raises(ValueError):
        HierarchicalVAE(image_size=8, resolutions=(8, 3))
    with pytest.raises(ValueError):
        HierarchicalVAE(image_size=8, resolutions=(8, 4), layers="2x1")
    with pytest.raises(ValueError):
        HierarchicalVAE(image_size=8, resolutions=(8, 4), layers={8: 0})


@pytest.mark.slow
def test_hierarchical_example_compares_three_models(tmp_path):
    import importlib

    mod = importlib.import_module("scratchgen.recipes.hierarchical_vae")
    res = mod.main(["--compare", "--epochs", "1", "--k", "4", "--out", str(tmp_path)])
    params = [e["parameters"] for e in res["models"].values()]
    assert set(res["models"]) == {"hvae", "single", "vae"}
    assert max(params) / min(params) < 1.05                 # similar parameter counts
    assert all(e["test_iwae_k4"] < 0 for e in res["models"].values())


def test_free_bits_drops_the_kl_gradient_of_layers_below_the_threshold():
    """With every layer's KL below lambda, the free-bits objective is recon + constant: the
    gradients are those of the reconstruction term alone; the reported loss stays -ELBO."""
    m = _tiny()
    x = _binary(6)
    step = HierarchicalVAETrainStep(m, lr=1e-3, grad_clip=None, free_bits=1e6)
    captured = {}
    step.opt.step = lambda: captured.update(
        {id(p): p.grad.numpy().copy() for p in m.parameters() if p.grad is not None})
    sg.manual_seed(5)
    out = step(x)
    assert out["loss"] == pytest.approx(out["recon"] + out["kl"])
    for p in m.parameters():
        p.grad = None
    sg.manual_seed(5)
    m.train()
    _, st = m.loss(x)
    st["recon"].backward()
    compared = 0
    for p in m.parameters():
        if p.grad is not None:
            np.testing.assert_allclose(captured[id(p)], p.grad.numpy(), rtol=1e-10, atol=1e-12)
            compared += 1
        elif id(p) in captured:  # reaches the loss only through a KL: no gradient at all
            assert not captured[id(p)].any()
    assert compared > 0


def test_free_bits_must_be_non_negative():
    with pytest.raises(ValueError, match="free_bits.*-1"):
        HierarchicalVAETrainStep(_tiny(perturb=0.0), free_bits=-1.0)
