"""Pix2Pix: the U-Net (shapes, layers, skips, dropout placement and its train / eval / reference
test-time behaviour), the losses gradient-checked in float64 and against a hand computation,
the train step, and the example end to end on the digits (files, sample, eval, resume, errors).
"""
from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

import scratchgen as sg
import scratchgen.nn as nn
from scratchgen.models import pix2pix
from scratchgen.models.pix2pix import (
    Pix2PixTrainStep, UNetGenerator, build_pix2pix, discriminator_loss, generator_loss,
    inference_mode, translate,
)
from scratchgen.models.patchgan import PatchGANDiscriminator
from scratchgen.testing import gradcheck

MNIST_DIR = pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mnist"


def _x(seed, *shape, dtype="float32"):
    return sg.tensor(np.random.default_rng(seed).uniform(-1, 1, size=shape), dtype=dtype)


def _count(module, kind):
    return sum(isinstance(m, kind) for m in module.modules())


# ---- the U-Net --------------------------------------------------------------------------------

@pytest.mark.parametrize("num_downs, shape", [(5, (2, 1, 32, 32)), (3, (3, 2, 16, 24)),
                                              (2, (1, 3, 4, 8))])
def test_unet_keeps_the_spatial_size(num_downs, shape):
    G = UNetGenerator(shape[1], 3, num_downs, ngf=4)
    y = G(_x(0, *shape))
    assert y.shape == (shape[0], 3) + shape[2:]
    assert float(np.abs(y.numpy()).max()) <= 1.0                       # tanh


def test_unet_layers_are_the_reference_ones():
    G = UNetGenerator(3, 2, 8, ngf=4)                                  # unet_256, narrow
    downs = [m for m in G.down.modules() if isinstance(m, nn.Conv2d)]
    ups = [m for m in G.up.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [c.weight.shape[:2] for c in downs] == [(4, 3), (8, 4), (16, 8)] + [(32, 16)] + \
        [(32, 32)] * 4
    # ConvTranspose weights are (in, out, kh, kw): the skips double every input but the
    # innermost's
    assert [c.weight.shape[:2] for c in ups] == [(8, 2), (16, 4), (32, 8), (64, 16)] + \
        [(64, 32)] * 3 + [(32, 32)]
    # norm in the encoder except outermost and innermost; in the decoder except outermost
    assert _count(G.down, nn.BatchNorm2d) == 6 and _count(G.up, nn.BatchNorm2d) == 7
    assert isinstance(G.up[0][-1], nn.Tanh)
    # dropout as the reference code: the num_downs - 5 = 3 blocks next to the innermost
    assert [i for i, u in enumerate(G.up) if _count(u, nn.Dropout)] == [4, 5, 6]
    assert G.n_dropout == 3 and UNetGenerator(1, 1, 5, ngf=2).n_dropout == 0
    assert [i for i, u in enumerate(UNetGenerator(1, 1, 5, 2, n_dropout=2).up)
            if _count(u, nn.Dropout)] == [2, 3]
    assert _count(UNetGenerator(1, 1, 8, 2, use_dropout=False), nn.Dropout) == 0
    # no bias before batch norm; instance norm keeps them
    assert all(c.bias is None for c in downs[1:-1] + ups[1:])
    assert downs[0].bias is not None and downs[-1].bias is not None and ups[0].bias is not None
    assert all(c.bias is not None for c in UNetGenerator(1, 1, 4, 2, norm="instance").modules()
               if isinstance(c, (nn.Conv2d, nn.ConvTranspose2d)))


def test_the_outermost_skip_carries_the_input():
    """With the second encoder conv zeroed, nothing of x passes below the first level: the
    output still depends on x, through the concatenation [e_0, h] alone, and only near each
    pixel (the 4x4 conv then the 4x4 transposed conv of the outermost level)."""
    G = UNetGenerator(1, 1, 4, ngf=3, norm="none")
    conv = G.down[1][1]
    conv.weight.data = conv.weight.data * 0.0
    conv.bias.data = conv.bias.data * 0.0
    x = _x(1, 1, 1, 16, 16)
    x.requires_grad_(True)
    G(x)[0, 0, 8, 8].backward()
    g = np.abs(x.grad.numpy()[0, 0])
    rows, cols = np.nonzero(g.sum(axis=1))[0], np.nonzero(g.sum(axis=0))[0]
    assert g.sum() > 0 and rows.max() - rows.min() + 1 <= 6 and cols.max() - cols.min() + 1 <= 6
    # with the outermost skip channels of the last layer zeroed instead, x has no way out
    G2 = UNetGenerator(1, 1, 4, ngf=3, norm="none")
    G2.down[1][1].weight.data = G2.down[1][1].weight.data * 0.0
    w = G2.up[0][1].weight.data.copy()
    w[:3] = 0.0                                                        # e_0's channels of [e_0, h]
    G2.up[0][1].weight.data = w
    x.grad = None
    G2(x).sum().backward()
    assert np.abs(x.grad.numpy()).max() == 0.0


def test_size_not_divisible_is_named():
    G = UNetGenerator(1, 1, 5, ngf=2)
    with pytest.raises(ValueError, match=r"divisible by 2\^5 = 32, got shape \(2, 1, 28, 28\)"):
        G(_x(0, 2, 1, 28, 28))
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\) images, got shape \(2, 3, 32, 32\)"):
        G(_x(0, 2, 3, 32, 32))
    with pytest.raises(ValueError, match="n_dropout must be an integer in \\[0, .* = 3\\], got 4"):
        UNetGenerator(1, 1, 5, n_dropout=4)
    with pytest.raises(ValueError, match="norm must be one of"):
        UNetGenerator(1, 1, 5, norm="layer")
    with pytest.raises(ValueError, match="image size 28"):
        build_pix2pix(1, 1, 28)


def test_dropout_train_eval_and_the_reference_test_mode():
    G = UNetGenerator(1, 1, 6, ngf=2, n_dropout=2)
    x = _x(0, 4, 1, 64, 64)
    G.train()
    a, b = G(x).numpy(), G(x).numpy()
    assert not np.allclose(a, b)                                       # dropout draws masks
    running = G.up[4][2].running_mean.numpy().copy()
    G.eval()
    np.testing.assert_array_equal(G(x).numpy(), G(x).numpy())          # no dropout, running stats
    np.testing.assert_array_equal(translate(G, x).numpy(), G(x).numpy())
    noisy = translate(G, x, dropout=True).numpy()
    assert not np.allclose(noisy, translate(G, x, dropout=True).numpy())
    # the reference's default test mode: dropout on, batch statistics, running ones untouched
    with inference_mode(G, dropout=False, batch_stats=True) as g:
        batch_mode = g(x).numpy()
        assert g.up[4][2].training and not g.up[4][3].training
    assert not np.allclose(batch_mode, G(x).numpy())
    np.testing.assert_array_equal(G.up[4][2].running_mean.numpy(), running)
    assert not any(m.training for m in G.modules())                    # modes restored
    G.train()
    with inference_mode(G):
        assert not G.training
    assert all(m.training for m in G.modules())


# ---- the losses -------------------------------------------------------------------------------

def _tiny(dtype="float64"):
    G = UNetGenerator(1, 1, 3, ngf=2, use_dropout=False).to(dtype)
    D = PatchGANDiscriminator(2, ndf=2, n_layers=1).to(dtype)
    return G, D


def _softplus(v):
    return np.logaddexp(0.0, v)


def test_losses_against_a_hand_computation():
    G, D = _tiny()
    x, y = _x(1, 3, 1, 8, 8, dtype="float64"), _x(2, 3, 1, 8, 8, dtype="float64")
    D.eval()                                   # the same logits in every call below
    fake = G(x)
    real_l = D(sg.tensor(np.concatenate([x.numpy(), y.numpy()], axis=1))).numpy()
    fake_l = D(sg.tensor(np.concatenate([x.numpy(), fake.numpy()], axis=1))).numpy()
    assert real_l.shape == (3, 1, 2, 2)        # a map of patch logits
    loss_d, parts = discriminator_loss(D, x, y, fake)
    assert loss_d.item() == pytest.approx(0.5 * (_softplus(-real_l).mean()
                                                 + _softplus(fake_l).mean()), rel=1e-12)
    assert parts["d_real"].item() == pytest.approx(real_l.mean(), rel=1e-12)
    l1 = np.abs(fake.numpy() - y.numpy()).mean()
    loss_g, parts = generator_loss(D, x, y, fake)
    assert parts["l1"].item() == pytest.approx(l1, rel=1e-12)
    assert loss_g.item() == pytest.approx(_softplus(-fake_l).mean() + 100.0 * l1, rel=1e-12)
    assert generator_loss(D, x, y, fake, lambda_l1=3.0)[0].item() == pytest.approx(
        _softplus(-fake_l).mean() + 3.0 * l1, rel=1e-12)
    assert generator_loss(None, x, y, fake, "l1")[0].item() == pytest.approx(l1, rel=1e-12)
    l2 = ((fake.numpy() - y.numpy()) ** 2).mean()
    assert generator_loss(None, x, y, fake, "l2")[0].item() == pytest.approx(l2, rel=1e-12)
    with pytest.raises(ValueError, match="unknown pix2pix loss 'l3'"):
        generator_loss(D, x, y, fake, "l3")


@pytest.mark.parametrize("loss", pix2pix.LOSSES)
def test_generator_loss_gradcheck_end_to_end(loss):
    """L_G through G and D (batch norm in training mode), w.r.t. the source images and a few
    of G's and D's parameters, in float64."""
    G, D = _tiny()
    x, y = _x(3, 2, 1, 8, 8, dtype="float64"), _x(4, 2, 1, 8, 8, dtype="float64")
    x.requires_grad_(True)
    w_g = G.down[1][1].weight                  # an encoder conv below the outermost level
    w_d = D.model[0].weight

    def f(x, *_):
        return generator_loss(D, x, y, G(x), loss)[0]

    assert gradcheck(f, [x, w_g, w_d] if loss == "gan+l1" else [x, w_g], atol=1e-5, rtol=1e-4,
                     mode="projection", n_projections=6)


def test_discriminator_loss_gradcheck_end_to_end():
    G, D = _tiny()
    x, y = _x(5, 2, 1, 8, 8, dtype="float64"), _x(6, 2, 1, 8, 8, dtype="float64")
    fake = G(x).detach()
    x.requires_grad_(True)
    y.requires_grad_(True)

    def f(x, y, *_):
        return discriminator_loss(D, x, y, fake)[0]

    assert gradcheck(f, [x, y, D.model[0].weight, D.model[2].weight], atol=1e-5, rtol=1e-4,
                     mode="projection", n_projections=6)


# ---- the train step ---------------------------------------------------------------------------

def test_train_step_updates_and_logs():
    G, D = _tiny("float32")
    step = Pix2PixTrainStep(G, D)
    x, y = _x(7, 4, 1, 8, 8), _x(8, 4, 1, 8, 8)
    g0 = [p.numpy().copy() for p in G.parameters()]
    d0 = [p.numpy().copy() for p in D.parameters()]
    out = step((x, y))
    assert set(out) == {"loss_d", "d_real", "d_fake", "l1", "gan", "loss_g"}
    assert out["loss_g"] == pytest.approx(out["gan"] + 100 * out["l1"], rel=1e-5)
    assert all(not np.array_equal(a, p.numpy()) for a, p in zip(g0, G.parameters()))
    assert all(not np.array_equal(a, p.numpy()) for a, p in zip(d0, D.parameters()))
    assert all(p.requires_grad for p in D.parameters())
    # the regression losses: no discriminator, no D logs; L1 falls on a fixed batch
    reg = Pix2PixTrainStep(_tiny("float32")[0], None, loss="l1", lr=1e-2)
    first = reg((x, y))["l1"]
    for _ in range(15):
        last = reg((x.numpy(), y.numpy()))
    assert set(last) == {"l1", "loss_g"} and last["l1"] < 0.8 * first
    assert "opt_d" not in reg.state_dict() and reg.state_dict()["steps"] == 16
    # a state dict round trip restores the counters and the optimizer moments
    twin = Pix2PixTrainStep(G, D)
    twin.load_state_dict(step.state_dict())
    assert twin.steps == 1 and twin.opt_d.state_dict()["state"].keys() == \
        step.opt_d.state_dict()["state"].keys()


def test_train_step_errors():
    G, D = _tiny("float32")
    with pytest.raises(ValueError, match="unknown pix2pix loss 'gan'"):
        Pix2PixTrainStep(G, D, loss="gan")
    with pytest.raises(ValueError, match="needs a discriminator"):
        Pix2PixTrainStep(G, None)
    with pytest.raises(ValueError, match="lambda_l1 must be .* got -1"):
        Pix2PixTrainStep(G, D, lambda_l1=-1)
    step = Pix2PixTrainStep(G, D)
    with pytest.raises(ValueError, match="pair .*sources, targets"):
        step(_x(0, 2, 1, 8, 8))
    with pytest.raises(ValueError, match=r"\(2, 1, 8, 8\) and targets \(3, 1, 8, 8\)"):
        step((_x(0, 2, 1, 8, 8), _x(0, 3, 1, 8, 8)))


# ---- the example ------------------------------------------------------------------------------

TINY = ["--steps", "3", "--batch-size", "8", "--ngf", "2", "--ndf", "2", "--sample-every", "2",
        "--eval-samples", "24", "--checkpoint-every", "3600"]


def _example():
    from scratchgen.recipes import pix2pix as example
    return example


def test_example_runs_samples_evaluates_and_resumes(tmp_path, capsys):
    from scratchgen import cli

    out = tmp_path / "p2p"
    m = _example().main(TINY + ["--out", str(out)])
    for name in ("config.json", "checkpoint.npz", "translations.png", "losses.png",
                 "metrics.json", "samples/step_000002.png"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["steps"] == 3 and saved["loss"] == "gan+l1" and m["steps_per_epoch"] == 187
    ev = saved["eval"]
    assert ev["n"] == 24 and 0 < ev["test_l1"] < 1 and ev["sharpness_real"] > 0
    assert saved["train_seconds_per_epoch"] > 0
    x = _example().sample(out, 5, seed=1)
    assert x.shape == (5, 1, 28, 28) and x.dtype == np.float32 and 0 <= x.min() <= x.max() <= 1
    np.testing.assert_array_equal(x, _example().sample(out, 5, seed=1))
    assert _example().sample(out, 2, label=3).shape == (2, 1, 28, 28)
    with pytest.raises(ValueError, match="--label 12: out of range"):
        _example().sample(out, 2, label=12)
    capsys.readouterr()
    assert cli.main(["eval", str(out), "--samples", "16"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model"] == "pix2pix" and result["n"] == 16 and "test_l1" in result
    with pytest.raises(SystemExit, match="already holds a run; pass --resume"):
        _example().main(TINY + ["--out", str(out)])
    more = [a if a != "3" else "5" for a in TINY]
    assert _example().main(more + ["--resume", "--out", str(out)])["steps"] == 5


def test_example_regression_loss_has_no_discriminator(tmp_path):
    from scratchgen.serialization import load

    out = tmp_path / "l2"
    m = _example().main(TINY + ["--loss", "l2", "--dropout-blocks", "0", "--sketch-scale",
                                "2", "--out", str(out)])
    assert m["parameters"]["discriminator"] == 0 and "l2" in m["final_losses"]
    assert set(load(out / "checkpoint.npz")["modules"]) == {"generator"}


@pytest.mark.parametrize("argv, flag, value", [
    (["--loss", "bogus"], "--loss", "bogus"),
    (["--n-layers", "4"], "--n-layers", "4"),
    (["--dropout-blocks", "5"], "--dropout-blocks", "5"),
    (["--loss", "l1", "--lambda-l1", "10"], "--lambda-l1", "10"),
    (["--lambda-l1", "-1"], "--lambda-l1", "-1"),
    (["--threshold", "0"], "--threshold", "0"),
    (["--sketch-scale", "3"], "--sketch-scale", "3"),
    (["--batch-size", "5000"], "--batch-size", "5000"),
])
def test_bad_options_are_one_line_errors(tmp_path, capsys, argv, flag, value):
    with pytest.raises(SystemExit) as info:
        _example().main(argv + ["--out", str(tmp_path / "run")])
    code = info.value.code
    text = capsys.readouterr().err.strip() if isinstance(code, int) else str(code)
    assert code != 0 and flag in text and value in text and "\n" not in text, text
    assert not (tmp_path / "run" / "checkpoint.npz").exists()


def test_missing_mnist_folder_is_named(tmp_path):
    from scratchgen.train import RunError

    with pytest.raises(RunError, match="--data-dir /nonexistent/mnist: no such folder"):
        _example().main(["--data", "mnist", "--data-dir", "/nonexistent/mnist",
                         "--out", str(tmp_path / "run")])


@pytest.mark.slow
@pytest.mark.skipif(not MNIST_DIR.is_dir(), reason="no MNIST in ../shared/data/mnist")
def test_example_on_mnist_a_few_steps(tmp_path):
    m = _example().main(TINY + ["--data", "mnist", "--data-dir", str(MNIST_DIR),
                                "--out", str(tmp_path / "mnist")])
    assert m["steps_per_epoch"] == 60000 // 8 and m["eval"]["n"] == 24
    assert m["eval"].get("class_accuracy_real", 1.0) > 0.9
