"""CycleGAN: the generator's shapes, the image pool, the learning-rate schedule, the losses
(gradient-checked in float64 and against a hand computation), and the example end to end with
exact resume, on digits and on picture folders."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import scratchgen as sg
from scratchgen import cli
from scratchgen.recipes import cyclegan as example
from scratchgen.models.cyclegan import (
    CycleGANTrainStep, ImagePool, ResnetBlock, ResnetGenerator, cycle_loss, identity_loss,
)
from scratchgen.models.patchgan import PatchGANDiscriminator
from scratchgen.testing import gradcheck
from scratchgen.train import load_run_state


# ---- the generator ----------------------------------------------------------------------------

@pytest.mark.parametrize("side,n_down", [(28, 2), (32, 2), (12, 2), (10, 1)])
def test_resnet_generator_keeps_the_spatial_size(side, n_down):
    G = ResnetGenerator(1, 3, ngf=4, n_blocks=2, n_downsampling=n_down)
    y = G(sg.randn(2, 1, side, side))
    assert y.shape == (2, 3, side, side)
    assert float(np.abs(y.numpy()).max()) <= 1.0          # tanh
    assert sum(isinstance(m, ResnetBlock) for m in G.modules()) == 2


def test_resnet_generator_refuses_bad_shapes_and_settings():
    G = ResnetGenerator(1, 1, ngf=2, n_blocks=1)
    with pytest.raises(ValueError, match=r"divisible by 4, got shape \(1, 1, 30, 30\)"):
        G(sg.randn(1, 1, 30, 30))
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\).*\(1, 3, 8, 8\)"):
        G(sg.randn(1, 3, 8, 8))
    with pytest.raises(ValueError, match="norm must be one of"):
        ResnetGenerator(1, 1, norm="layer")
    with pytest.raises(ValueError, match="n_blocks must be an integer >= 0, got -1"):
        ResnetGenerator(1, 1, n_blocks=-1)


def test_weights_start_at_n_0_002():
    G = ResnetGenerator(1, 1, ngf=16, n_blocks=2)
    w = np.concatenate([p.numpy().ravel() for name, p in G.named_parameters()
                        if name.endswith("weight")])
    assert abs(w.std() - 0.02) < 0.002 and abs(w.mean()) < 0.002
    assert all(np.all(p.numpy() == 0) for name, p in G.named_parameters()
               if name.endswith("bias"))


def test_build_cyclegan_gives_the_papers_networks_by_default():
    from scratchgen.models.cyclegan import build_cyclegan

    G, F, D_A, D_B = build_cyclegan(3, 1, ngf=2, ndf=2)
    assert (G.in_channels, G.out_channels, F.in_channels, F.out_channels) == (3, 1, 1, 3)
    assert G.n_blocks == 9 and G.n_downsampling == 2 and G.norm == "instance"
    assert (D_A.in_channels, D_B.in_channels) == (3, 1)
    assert D_A.receptive_field == 70 and D_A.norm == "instance"


# ---- the image pool ---------------------------------------------------------------------------

def _images(values):
    return sg.tensor(np.asarray(values, np.float32).reshape(-1, 1, 1, 1))


def test_pool_fills_first_then_swaps_with_probability_one_half():
    pool = ImagePool(size=4, seed=7)
    out = pool(_images([0, 1, 2, 3]))
    np.testing.assert_array_equal(out.numpy().ravel(), [0, 1, 2, 3])   # filling: returned as is
    assert len(pool) == 4
    rng = np.random.default_rng(7)                                     # the pool's own draws
    stored = [0.0, 1.0, 2.0, 3.0]
    swapped = 0
    for v in range(4, 2004):
        got = float(pool(_images([v])).numpy().ravel()[0])
        if rng.uniform() > 0.5:
            k = int(rng.integers(4))
            expected, stored[k] = stored[k], float(v)
            swapped += 1
        else:
            expected = float(v)
        assert got == expected
    assert 900 < swapped < 1100                       # 2000 draws, p = 1/2 (5 sigma ~ 112)
    assert sorted(float(x) for x in np.asarray(pool.images).ravel()) == sorted(stored)


def test_pool_state_round_trips_through_a_checkpoint_file(tmp_path):
    pool = ImagePool(size=3, seed=1)
    for v in range(10):
        pool(_images([v, v + 0.5]))
    sg.save(pool.state_dict(), tmp_path / "pool.npz")
    twin = ImagePool(size=3, seed=123)
    twin.load_state_dict(sg.load(tmp_path / "pool.npz"))
    for v in range(20, 40):
        np.testing.assert_array_equal(pool(_images([v])).numpy(), twin(_images([v])).numpy())
    with pytest.raises(ValueError, match="pool of size 3, this pool has size 2"):
        ImagePool(size=2).load_state_dict(pool.state_dict())
    empty = ImagePool(size=0)
    np.testing.assert_array_equal(empty(_images([5, 6])).numpy().ravel(), [5, 6])
    assert len(empty) == 0
    fresh = ImagePool(size=2)
    fresh.load_state_dict(ImagePool(size=2).state_dict())
    assert len(fresh) == 0


# ---- the learning rate ------------------------------------------------------------------------

def test_schedule_is_constant_then_linear_to_zero():
    rates = example.schedule(2e-4, 3, 4)
    np.testing.assert_allclose(rates, [2e-4] * 3 + [2e-4 * (1 - k / 5) for k in (1, 2, 3, 4)])
    assert example.schedule(1.0, 2, 0) == [1.0, 1.0]


# ---- the losses -------------------------------------------------------------------------------

def _tiny(dtype="float64", pool_size=0):
    sg.manual_seed(3)
    G = ResnetGenerator(1, 1, ngf=2, n_blocks=1, n_downsampling=1).to(dtype=dtype)
    F = ResnetGenerator(1, 1, ngf=2, n_blocks=1, n_downsampling=1).to(dtype=dtype)
    D_A = PatchGANDiscriminator(1, ndf=2, n_layers=1, norm="instance").to(dtype=dtype)
    D_B = PatchGANDiscriminator(1, ndf=2, n_layers=1, norm="instance").to(dtype=dtype)
    a = sg.tensor(np.random.default_rng(0).uniform(-1, 1, (2, 1, 8, 8)), dtype=dtype)
    b = sg.tensor(np.random.default_rng(1).uniform(-1, 1, (2, 1, 8, 8)), dtype=dtype)
    return G, F, D_A, D_B, a, b


def test_cycle_and_identity_losses_gradcheck_in_float64():
    G, F, _, _, a, b = _tiny()
    a.requires_grad_(True)
    b.requires_grad_(True)
    w_g = G.model[1].weight                        # G's first convolution
    w_f = F.model[-2].weight                       # F's last convolution
    gradcheck(lambda a, b, w, v: cycle_loss(G, F, a, b), [a, b, w_g, w_f], mode="projection",
              n_projections=6)
    gradcheck(lambda a, b, w, v: identity_loss(G, F, a, b), [a, b, w_g, w_f],
              mode="projection", n_projections=6)


def _mean(x):
    return float(np.mean(x))


def test_losses_end_to_end_against_a_hand_computation():
    G, F, D_A, D_B, a, b = _tiny()
    step = CycleGANTrainStep(G, F, D_A, D_B, lambda_cycle=10.0, lambda_identity=0.5,
                             pool_size=0)
    loss, parts, (fake_b, fake_a) = step.generator_loss(a, b)
    loss_d, d_parts = step.discriminator_loss(a, b, fake_a, fake_b)
    with sg.no_grad():
        n = {k: v.numpy() for k, v in {
            "a": a, "b": b, "Ga": G(a), "Fb": F(b), "FGa": F(G(a)), "GFb": G(F(b)),
            "Gb": G(b), "Fa": F(a), "DB_Ga": D_B(G(a)), "DA_Fb": D_A(F(b)),
            "DA_a": D_A(a), "DB_b": D_B(b)}.items()}
    hand_g = (_mean((n["DB_Ga"] - 1) ** 2) + _mean((n["DA_Fb"] - 1) ** 2)
              + 10 * (_mean(np.abs(n["FGa"] - n["a"])) + _mean(np.abs(n["GFb"] - n["b"])))
              + 5 * (_mean(np.abs(n["Gb"] - n["b"])) + _mean(np.abs(n["Fa"] - n["a"]))))
    hand_d = (0.5 * (_mean((n["DA_a"] - 1) ** 2) + _mean(n["DA_Fb"] ** 2))
              + 0.5 * (_mean((n["DB_b"] - 1) ** 2) + _mean(n["DB_Ga"] ** 2)))
    assert n["DB_Ga"].shape == (2, 1, 2, 2)        # a logits map, averaged over
    np.testing.assert_allclose(loss.item(), hand_g, rtol=1e-12)
    np.testing.assert_allclose(loss_d.item(), hand_d, rtol=1e-12)
    np.testing.assert_allclose(parts["idt_a"].item(), _mean(np.abs(n["Fa"] - n["a"])), rtol=1e-12)
    # without identity the terms are gone; lambda scales both cycles
    step0 = CycleGANTrainStep(G, F, D_A, D_B, lambda_cycle=2.0, lambda_identity=0.0,
                              pool_size=0)
    loss0, parts0, _ = step0.generator_loss(a, b)
    assert "idt_a" not in parts0
    np.testing.assert_allclose(loss0.item(), hand_g - 8 * (
        _mean(np.abs(n["FGa"] - n["a"])) + _mean(np.abs(n["GFb"] - n["b"])))
        - 5 * (_mean(np.abs(n["Gb"] - n["b"])) + _mean(np.abs(n["Fa"] - n["a"]))), rtol=1e-12)


def test_whole_losses_gradcheck_in_float64():
    G, F, D_A, D_B, a, b = _tiny()
    step = CycleGANTrainStep(G, F, D_A, D_B, pool_size=0)
    params = [G.model[1].weight, F.model[1].weight, D_B.model[0].weight]
    gradcheck(lambda w1, w2, w3: step.generator_loss(a, b)[0], params, mode="projection",
              n_projections=6)
    with sg.no_grad():
        fake_b, fake_a = G(a), F(b)
    d_params = [D_A.model[0].weight, D_B.model[-1].weight]
    gradcheck(lambda w1, w2: step.discriminator_loss(a, b, fake_a, fake_b)[0], d_params,
              mode="projection", n_projections=6)


def test_step_updates_both_pairs_and_pools_the_fakes():
    G, F, D_A, D_B, a, b = _tiny("float32", pool_size=3)
    step = CycleGANTrainStep(G, F, D_A, D_B, pool_size=3)
    before = {k: m.model[1].weight.numpy().copy() for k, m in (("G", G), ("F", F))}
    before.update({k: m.model[0].weight.numpy().copy() for k, m in (("D_A", D_A), ("D_B", D_B))})
    out = step((a.numpy(), b.numpy()))
    assert set(out) >= {"loss_g", "gan_g", "gan_f", "cycle_a", "cycle_b", "idt_a", "idt_b",
                        "loss_d_a", "loss_d_b"}
    for name, m in (("G", G), ("F", F)):
        assert not np.array_equal(before[name], m.model[1].weight.numpy())
    for name, m in (("D_A", D_A), ("D_B", D_B)):
        assert not np.array_equal(before[name], m.model[0].weight.numpy())
        assert all(p.requires_grad for p in m.parameters())     # unfrozen again
    assert len(step.pool_a) == 2 and len(step.pool_b) == 2
    with pytest.raises(ValueError, match="lambda_cycle must be a finite number >= 0"):
        CycleGANTrainStep(G, F, D_A, D_B, lambda_cycle=-1.0)


# ---- the example ------------------------------------------------------------------------------

def _options(argv):
    from scratchgen.train import given_options

    p = example.parser()
    opts = vars(p.parse_args(argv))
    example.check_options(opts, given_options(p, argv))
    return tuple(opts[k] for k in ("data", "ngf", "ndf", "n_blocks", "d_layers", "batch_size",
                                   "epochs", "epochs_decay"))


def test_defaults_small_for_digits_and_the_papers_for_folders():
    assert _options([]) == ("digits", 16, 16, 3, 2, 8, 5, 5)
    assert _options(["--data", "mnist", "--epochs", "3"]) == ("mnist", 16, 16, 3, 2, 8, 3, 3)
    assert _options(["--domain-a", "x", "--domain-b", "y"]) == (
        "folders", 64, 64, 9, 3, 1, 100, 100)
    with pytest.raises(SystemExit, match="--data mnist: give either --data or --domain-a"):
        _options(["--data", "mnist", "--domain-a", "x", "--domain-b", "y"])


TINY = ["--ngf", "2", "--ndf", "2", "--n-blocks", "1", "--batch-size", "4", "--max-images",
        "8", "--eval-images", "16", "--sample-every", "2", "--epochs", "1",
        "--epochs-decay", "2"]


def _weights(run):
    return load_run_state(run)["modules"]


def test_example_on_digits_end_to_end_with_exact_resume(tmp_path, capsys):
    out = tmp_path / "run"
    m = example.main(TINY + ["--steps", "4", "--out", str(out)])
    for name in ("config.json", "checkpoint.npz", "translations.png", "losses.png",
                 "metrics.json", "metrics.jsonl", "samples/step_000002.png"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["steps"] == 4 and saved["epochs"] == 2 and saved["steps_per_epoch"] == 2
    e = saved["eval"]
    assert set(e["accuracy"]) == {"G(A)", "F(B)", "real A", "real B"}
    assert e["stroke_mass"]["A"] < e["stroke_mass"]["B"]
    assert e["cycle_l1"]["A"] > 0 and saved["train_seconds_per_epoch"] > 0
    # two epochs of 2 steps: the rate of the third epoch, the first of the decay
    np.testing.assert_allclose(m["learning_rate"], example.schedule(2e-4, 1, 2)[2])
    with Image.open(out / "translations.png") as im:
        assert im.size[0] > 6 * 28
    x = example.sample(out, 5)
    assert x.shape == (5, 1, 28, 28) and x.dtype == np.float32 and 0 <= x.min() <= x.max() <= 1
    assert example.sample(out, 2, label=3).shape == (2, 1, 28, 28)
    ev = example.evaluate(out, eval_images=10)
    assert ev["test_images"] == {"A": 10, "B": 10}
    assert cli.main(["eval", str(out), "--eval-images", "12"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["model"] == "cyclegan" and printed["test_images"] == {"A": 12, "B": 12}

    # 2 steps, stop, resume to 4: the same weights as 4 steps in one go
    half = tmp_path / "half"
    example.main(TINY + ["--steps", "2", "--out", str(half)])
    with pytest.raises(SystemExit, match="already holds a run; pass --resume"):
        example.main(TINY + ["--steps", "2", "--out", str(half)])
    example.main(["--steps", "4", "--resume", "--out", str(half)])
    whole, resumed = _weights(out), _weights(half)
    for net in ("G", "F", "D_A", "D_B"):
        for key, value in whole[net].items():
            np.testing.assert_array_equal(value, resumed[net][key], err_msg=f"{net}.{key}")


def _folder(path, n, side, seed):
    path.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (side, side)).astype(np.uint8)).save(
            path / f"{i:02d}.png")


def test_example_on_picture_folders(tmp_path):
    _folder(tmp_path / "a", 4, 8, 0)
    _folder(tmp_path / "b", 5, 8, 1)
    out = tmp_path / "run"
    m = example.main(["--domain-a", str(tmp_path / "a"), "--domain-b", str(tmp_path / "b"),
                      "--ngf", "2", "--ndf", "2", "--n-blocks", "1", "--d-layers", "1",
                      "--batch-size", "2", "--steps", "2", "--out", str(out)])
    assert m["data"] == "folders" and "accuracy" not in m["eval"]
    assert m["eval"]["test_images"] == {"A": 4, "B": 5}
    assert m["steps_per_epoch"] == 2                    # max(4, 5) // 2
    assert (out / "translations.png").is_file()
    _folder(tmp_path / "odd", 2, 6, 2)
    with pytest.raises(SystemExit, match="pictures of 6x6; the generator needs sides divisible"):
        example.main(["--domain-a", str(tmp_path / "odd"), "--domain-b", str(tmp_path / "odd"),
                      "--out", str(tmp_path / "r2")])
    with pytest.raises(SystemExit, match="--domain-a .*: needs --domain-b DIR too"):
        example.main(["--domain-a", str(tmp_path / "a"), "--out", str(tmp_path / "r3")])
    with pytest.raises(SystemExit, match="no such folder"):
        example.main(["--domain-a", str(tmp_path / "a"), "--domain-b", str(tmp_path / "x"),
                      "--out", str(tmp_path / "r4")])
