"""IntroVAE and Soft-IntroVAE: end-to-end float64 gradient checks of their losses, which
gradients reach which network, and the loss formulas against a direct NumPy evaluation."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

import scratchgen as sg
from scratchgen.losses.kl import kl_normal_standard_normal
from scratchgen.models.intro_vae import IntroVAE, IntroVAETrainStep, l_ae, l_reg
from scratchgen.models.soft_intro_vae import (
    SoftIntroVAE, SoftIntroVAETrainStep, TOY_HYPERPARAMETERS, elbo_density, reconstruction_error,
)
from scratchgen.testing import gradcheck


def _t(a) -> sg.Tensor:
    return sg.tensor(np.asarray(a, dtype=np.float64))


def _tiny_intro(cls=IntroVAE) -> IntroVAE:
    sg.manual_seed(3)
    return cls(in_channels=1, z_dim=3, channels=(2,), image_size=4).to("float64")


def _tiny_toy() -> SoftIntroVAE:
    sg.manual_seed(4)
    return SoftIntroVAE.toy(x_dim=2, z_dim=2, n_layers=1, hidden=6).to("float64")


def _params(module) -> list:
    return list(module.parameters())


def _check(loss_fn, params, **kw) -> None:
    """gradcheck of loss_fn() as a function of ``params`` (perturbed in place by the checker)."""
    gradcheck(lambda *ps: loss_fn(), params, mode="projection", n_projections=4,
              atol=1e-6, rtol=1e-5, **kw)


# ---- IntroVAE ---------------------------------------------------------------------------------

def test_l_reg_and_l_ae_formulas():
    mu, lv = _t([[0.5, -1.0]]), _t([[0.2, -0.3]])
    expected = 0.5 * sum(m * m + math.exp(v) - v - 1 for m, v in [(0.5, 0.2), (-1.0, -0.3)])
    assert l_reg(mu, lv).item() == pytest.approx(expected, rel=1e-12)
    x, y = _t(np.zeros((2, 1, 2, 2))), _t(np.ones((2, 1, 2, 2)))
    assert l_ae(x, y).item() == pytest.approx(0.5 * 4)


def test_intro_encoder_loss_gradcheck():
    m = _tiny_intro()
    step = IntroVAETrainStep(m, alpha=0.5, beta=0.7, margin=50.0)  # hinge active
    rng = np.random.default_rng(0)
    x, eps, z_p = _t(rng.random((3, 1, 4, 4))), _t(rng.standard_normal((3, 3))), \
        _t(rng.standard_normal((3, 3)))
    _, parts = step.encoder_loss(x, eps, z_p)
    ng = {k: v.detach() for k, v in parts["ng"].items()}       # ng(.) held at the base point
    assert step.margin > parts["kl_rec"].item() and step.margin > parts["kl_fake"].item()
    _check(lambda: step.encoder_loss(x, eps, z_p, ng=ng)[0], _params(m.encoder))


def test_intro_generator_loss_gradcheck():
    m = _tiny_intro()
    step = IntroVAETrainStep(m, alpha=0.5, beta=0.7)
    rng = np.random.default_rng(1)
    x, z, z_p = _t(rng.random((3, 1, 4, 4))), _t(rng.standard_normal((3, 3))), \
        _t(rng.standard_normal((3, 3)))
    _check(lambda: step.generator_loss(x, z, z_p)[0], _params(m.decoder))


def test_intro_hinge_terms_never_reach_the_generator():
    """With beta = 0 (no L_AE) L_E has no path to G: the generated images enter E as ng(x_s)."""
    m = _tiny_intro()
    step = IntroVAETrainStep(m, alpha=1.0, beta=0.0, margin=50.0)
    x = _t(np.random.default_rng(2).random((3, 1, 4, 4)))
    loss, _ = step.encoder_loss(x)
    grads = sg.grad(loss, _params(m.decoder), allow_unused=True)
    assert all(g is None or not np.any(g.numpy()) for g in grads)   # 0 * L_AE gives zeros
    # while with beta > 0 the reconstruction term does reach G (which is why the update freezes it)
    step.beta = 1.0
    loss, _ = step.encoder_loss(x)
    grads = sg.grad(loss, _params(m.decoder), allow_unused=True)
    assert any(g is not None and np.any(g.numpy()) for g in grads)


def test_intro_updates_touch_only_their_own_network():
    m = _tiny_intro()
    step = IntroVAETrainStep(m, alpha=0.5, beta=1.0, margin=50.0)
    x = _t(np.random.default_rng(3).random((4, 1, 4, 4)))
    dec_before = [p.data.copy() for p in m.decoder.parameters()]
    parts = step.encoder_update(x)
    assert all(p.grad is None for p in m.decoder.parameters())
    assert all(p.grad is not None for p in m.encoder.parameters())
    assert all(np.array_equal(a, p.data) for a, p in zip(dec_before, m.decoder.parameters()))
    assert all(p.requires_grad for p in m.parameters())         # unfrozen afterwards
    enc_before = [p.data.copy() for p in m.encoder.parameters()]
    step.generator_update(x, parts["z"], parts["z_p"])
    assert all(p.grad is None for p in m.encoder.parameters())
    assert all(p.grad is not None for p in m.decoder.parameters())
    assert all(np.array_equal(a, p.data) for a, p in zip(enc_before, m.encoder.parameters()))
    assert all(p.requires_grad for p in m.parameters())
    out = step.step(x)
    assert set(out) >= {"loss_e", "loss_g", "l_ae", "kl_real", "kl_rec", "kl_fake"}


def test_intro_warmup_then_adversarial_and_sampling_shapes():
    m = _tiny_intro()
    step = IntroVAETrainStep(m, vae_warmup_steps=1)
    x = np.random.default_rng(4).random((4, 1, 4, 4))
    assert set(step(x)) == {"loss_vae"}
    assert "loss_e" in step(x)
    m.eval()
    with sg.no_grad():
        assert m.sample(5).shape == (5, 1, 4, 4)
        assert m.reconstruct(_t(x)).shape == (4, 1, 4, 4)
    state = step.state_dict()
    step2 = IntroVAETrainStep(m)
    step2.load_state_dict(state)
    assert step2.steps_done == 2


# ---- Soft-IntroVAE ----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["toy", "conv"])
def test_soft_intro_encoder_loss_gradcheck(kind):
    m = _tiny_toy() if kind == "toy" else _tiny_intro(SoftIntroVAE)
    step = SoftIntroVAETrainStep(m, beta_rec=0.7, beta_kl=0.6, beta_neg=0.9, gamma_r=0.3)
    rng = np.random.default_rng(5)
    shape = (4, 2) if kind == "toy" else (3, 1, 4, 4)
    n, zd = shape[0], m.z_dim
    x = _t(rng.random(shape))
    noise = [_t(rng.standard_normal((n, zd))) for _ in range(4)]
    _, parts = step.encoder_loss(x, *noise)
    ng = {k: v.detach() for k, v in parts["ng"].items()}
    _check(lambda: step.encoder_loss(x, *noise, ng=ng)[0], _params(m.encoder))


@pytest.mark.parametrize("kind", ["toy", "conv"])
def test_soft_intro_decoder_loss_gradcheck(kind):
    m = _tiny_toy() if kind == "toy" else _tiny_intro(SoftIntroVAE)
    # gamma_r large enough that the fakes' reconstruction terms matter in the check
    step = SoftIntroVAETrainStep(m, beta_rec=0.7, beta_kl=0.6, beta_neg=0.9, gamma_r=0.3)
    rng = np.random.default_rng(6)
    shape = (4, 2) if kind == "toy" else (3, 1, 4, 4)
    n, zd = shape[0], m.z_dim
    x = _t(rng.random(shape))
    z, noise, e1, e2 = (_t(rng.standard_normal((n, zd))) for _ in range(4))
    _, parts = step.decoder_loss(x, z, noise, e1, e2)
    ng = {k: v.detach() for k, v in parts["ng"].items()}
    _check(lambda: step.decoder_loss(x, z, noise, e1, e2, ng=ng)[0], _params(m.decoder))


def test_soft_intro_fakes_enter_the_encoder_detached():
    """With beta_rec = 0, L_E = s beta_kl KL(x) + expELBO terms of KL(E(ng(fake))) only: no
    path to the decoder at all."""
    m = _tiny_toy()
    step = SoftIntroVAETrainStep(m, beta_rec=0.0, beta_kl=1.0, beta_neg=1.0)
    x = _t(np.random.default_rng(7).random((5, 2)))
    loss, _ = step.encoder_loss(x)
    grads = sg.grad(loss, _params(m.decoder), allow_unused=True)
    assert all(g is None or not np.any(g.numpy()) for g in grads)   # 0 * rec gives zeros


def test_soft_intro_updates_touch_only_their_own_network():
    m = _tiny_toy()
    step = SoftIntroVAETrainStep(m, **TOY_HYPERPARAMETERS["ring"])
    x = _t(np.random.default_rng(8).random((6, 2)))
    pe = step.encoder_update(x)
    assert all(p.grad is None for p in m.decoder.parameters())
    assert all(p.grad is not None for p in m.encoder.parameters())
    step.decoder_update(x, pe["z"], pe["noise"])
    assert all(p.grad is None for p in m.encoder.parameters())
    assert all(p.grad is not None for p in m.decoder.parameters())
    assert all(p.requires_grad for p in m.parameters())


def test_soft_intro_encoder_loss_matches_the_official_formula():
    """lossE = s (beta_kl KL_real + beta_rec rec) + 0.25 (mean exp(-2 s (beta_rec rec_f + beta_neg KL_f))
    + mean exp(-2 s (beta_rec rec_r + beta_neg KL_r))), s = 1/2 for 2-D points (the 2-D code)."""
    m = _tiny_toy()
    bk, br, bn = 0.3, 0.2, 0.9
    step = SoftIntroVAETrainStep(m, beta_rec=br, beta_kl=bk, beta_neg=bn)
    rng = np.random.default_rng(9)
    x = _t(rng.random((5, 2)) * 2 - 1)
    eps, noise, e_rec, e_fake = (_t(rng.standard_normal((5, 2))) for _ in range(4))
    loss, _ = step.encoder_loss(x, eps, noise, e_rec, e_fake)
    assert step.scale == 0.5
    with sg.no_grad():
        def enc(v):
            mu, lv = m.encode(v)
            return mu.numpy(), lv.numpy()

        def dec(z):
            return m.decode(_t(z)).numpy()

        def kl(mu, lv):
            return -0.5 * (1 + lv - mu ** 2 - np.exp(lv)).sum(1)

        xs = x.numpy()
        fake = dec(noise.numpy())
        mu, lv = enc(x)
        rec = dec(mu + np.exp(0.5 * lv) * eps.numpy())
        fmu, flv = enc(_t(fake))
        rec_fake = dec(fmu + np.exp(0.5 * flv) * e_fake.numpy())
        rmu, rlv = enc(_t(rec))
        rec_rec = dec(rmu + np.exp(0.5 * rlv) * e_rec.numpy())
        s = 0.5
        exp_f = np.exp(-2 * s * (br * ((fake - rec_fake) ** 2).sum(1) + bn * kl(fmu, flv))).mean()
        exp_r = np.exp(-2 * s * (br * ((rec - rec_rec) ** 2).sum(1) + bn * kl(rmu, rlv))).mean()
        expected = s * (bk * kl(mu, lv).mean() + br * ((xs - rec) ** 2).sum(1).mean()) \
            + 0.25 * (exp_f + exp_r)
    assert loss.item() == pytest.approx(expected, rel=1e-10)


def test_soft_intro_scale_images_and_density_and_schedule():
    m = _tiny_intro(SoftIntroVAE)
    step = SoftIntroVAETrainStep(m, milestones=(1, 2), lr_e=1e-3, lr_d=1e-3)
    x = np.random.default_rng(10).random((3, 1, 4, 4))
    step(x)
    assert step.scale == pytest.approx(1.0 / 16)                   # 1 / (C H W)
    assert step.opt_e.param_groups[0]["lr"] == pytest.approx(1e-4)  # divided by 10 at step 1
    step(x)
    assert step.opt_d.param_groups[0]["lr"] == pytest.approx(1e-5)
    toy = _tiny_toy()
    pts = _t(np.random.default_rng(11).random((7, 2)))
    with sg.no_grad():
        dens = elbo_density(toy, pts).numpy()
        mu, lv = toy.encode(pts)
        expected = np.exp(-(kl_normal_standard_normal(mu, lv).numpy()
                            + reconstruction_error(pts, toy.decode(mu)).numpy()))
    np.testing.assert_allclose(dens, expected, rtol=1e-12)


# ---- the examples, end to end on tiny budgets (slow: they train) ------------------------------

def _example(name: str):
    import importlib

    return importlib.import_module(f"scratchgen.recipes.{name}")


@pytest.mark.slow
def test_intro_vae_example_runs(tmp_path):
    m = _example("intro_vae").main(["--epochs", "2", "--vae-warmup-epochs", "1",
                                    "--out", str(tmp_path / "iv")])
    assert m["epochs"] == 2 and (tmp_path / "iv" / "samples.png").exists()


@pytest.mark.slow
def test_soft_intro_vae_toy_example_runs(tmp_path):
    m = _example("soft_intro_vae_toy").main([
        "--steps", "40", "--vae-warmup", "20", "--milestones", "30", "--hidden", "32",
        "--pool", "5000", "--eval-samples", "5000", "--grid", "40", "--out", str(tmp_path / "t")])
    assert 0.0 <= m["jsd"] <= math.log(2.0)
    assert (tmp_path / "t" / "density.png").exists() and (tmp_path / "t" / "samples.png").exists()


def test_soft_intro_vae_image_example_runs_and_resumes(tmp_path):
    example = _example("soft_intro_vae")
    args = ["--limit", "64", "--batch-size", "32", "--eval-images", "40", "--out", str(tmp_path)]
    first = example.main(args + ["--epochs", "1"])
    for name in ("samples.png", "reconstructions.png", "metrics.json", "metrics.jsonl",
                 "checkpoint.npz", "samples/step_000002.png"):
        assert (tmp_path / name).is_file(), name
    assert first["steps"] == 2 and first["hyperparameters"]["beta_neg"] == pytest.approx(
        256 * 64 / 784)
    assert first["final_losses"] and all(math.isfinite(v) for v in first["final_losses"].values())
    # --resume continues from the checkpoint, and metrics.json keeps the first epoch's row
    second = example.main(args + ["--epochs", "2", "--resume"])
    assert second["steps"] == 4 and [e["epoch"] for e in second["epochs"]] == [1.0, 2.0]
    for row in second["epochs"]:
        assert set(row) == {"epoch", "test_rec_mse", "kl_real", "kl_rec", "kl_fake", "seconds",
                            "cpu_seconds"}
        assert all(math.isfinite(v) for v in row.values()) and row["test_rec_mse"] > 0
    assert json.loads((tmp_path / "metrics.json").read_text())["epochs"] == second["epochs"]
