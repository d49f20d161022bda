"""Style transfer: the transformation network's shapes, range and refusals, an end-to-end
gradient check of its perceptual loss in float64, Gatys' pixel optimisation lowering the loss,
and the example end to end at tiny sizes (its files, exact resume, --optimize, sample(),
one-line errors)."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

import scratchgen as sg
from scratchgen.recipes import style_transfer as example
from scratchgen.losses.perceptual import PerceptualLoss
from scratchgen.models.style_transfer import (
    ImageOptimizationTrainStep, StyleTransferTrainStep, TransformerNet, optimize_image,
)
from scratchgen.models.vgg import random_vgg16
from scratchgen.testing import gradcheck


def images(seed, *shape, dtype="float32"):
    return sg.tensor(np.random.default_rng(seed).uniform(size=shape), dtype=dtype)


def small_loss(style_weight=10.0, tv_weight=0.0, dtype="float32"):
    """A perceptual loss on a narrow random VGG (cheap), with the paper's layers."""
    vgg = random_vgg16(0, channels=(4, 6, 8, 8), dtype=dtype)
    return PerceptualLoss(vgg, content_weight=1.0, style_weight=style_weight, tv_weight=tv_weight)


# ---- the network ------------------------------------------------------------------------------

@pytest.mark.parametrize("h,w", [(8, 8), (12, 20), (32, 16)])
def test_transformer_net_keeps_the_size_and_the_range(h, w):
    net = TransformerNet(width=4, num_residual=2)
    y = net(images(0, 2, 3, h, w))
    assert y.shape == (2, 3, h, w)
    assert 0.0 <= y.numpy().min() and y.numpy().max() <= 1.0


@pytest.mark.parametrize("shape,match", [
    ((1, 3, 30, 32), r"shape \(1, 3, 30, 32\): H and W must be multiples of 4"),
    ((1, 3, 32, 18), r"shape \(1, 3, 32, 18\): H and W must be multiples of 4"),
    ((1, 1, 32, 32), r"RGB images \(N, 3, H, W\), got shape \(1, 1, 32, 32\)"),
    ((1, 3, 4, 4), r"shape \(1, 3, 4, 4\) is too small"),
])
def test_transformer_net_refuses_sizes_it_cannot_keep(shape, match):
    with pytest.raises(ValueError, match=match):
        TransformerNet(width=2, num_residual=0)(sg.zeros(shape))


def test_transformer_net_layout_matches_the_paper():
    net = TransformerNet()   # width 32: the paper's 32, 64, 128 channels, 5 residual blocks
    assert len(net.residual) == 5
    assert net.down[0].conv.weight.shape == (32, 3, 9, 9)
    assert net.down[3].conv.weight.shape == (64, 32, 3, 3)
    assert net.residual[0].conv1.conv.weight.shape == (128, 128, 3, 3)
    assert net.out.conv.weight.shape == (3, 32, 9, 9)
    with pytest.raises(ValueError, match="width must be a positive integer, got 0"):
        TransformerNet(width=0)


def test_style_transfer_loss_gradcheck_float64():
    """d L(f_W(y_c)) / dW end to end: network, VGG features, Gram matrices, TV."""
    net = TransformerNet(width=2, num_residual=1).to("float64")
    loss = small_loss(tv_weight=0.1, dtype="float64")
    content = images(1, 2, 3, 8, 8, dtype="float64")
    grams = loss.style_targets(images(2, 1, 3, 12, 12, dtype="float64"))

    def total(*_params):
        return loss(net(content), content, grams)[0]
    gradcheck(total, list(net.parameters()), mode="projection")


def test_training_step_lowers_the_loss():
    sg.manual_seed(0)
    net = TransformerNet(width=4, num_residual=1)
    loss = small_loss()
    step = StyleTransferTrainStep(net, loss, loss.style_targets(images(3, 1, 3, 16, 16)), lr=1e-3)
    batch = images(4, 2, 3, 16, 16)
    first = step(batch)
    for _ in range(19):
        last = step(batch)
    assert set(first) == {"content", "style", "loss"}
    assert last["loss"] < 0.5 * first["loss"]


# ---- Gatys: optimising the pixels -------------------------------------------------------------

def test_optimize_image_lowers_the_loss_and_stays_a_picture():
    loss = small_loss(tv_weight=1e-3)
    content = images(5, 1, 3, 16, 16)
    grams = loss.style_targets(images(6, 1, 3, 16, 16))
    seen = []
    x, history = optimize_image(lambda y: loss(y, content, grams), content, steps=25, lr=0.05,
                                callback=lambda t, y, parts: seen.append(t))
    assert seen == list(range(1, 26)) and len(history) == 25
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]
    assert history[-1]["style"] < history[0]["style"]
    assert history[0]["content"] == pytest.approx(0.0, abs=1e-6)   # it starts at the content
    assert x.shape == (1, 3, 16, 16) and not x.requires_grad
    assert 0.0 <= x.numpy().min() and x.numpy().max() <= 1.0


def test_optimize_image_refuses_bad_arguments():
    loss = lambda y: (y.sum(), {})   # noqa: E731
    with pytest.raises(ValueError, match=r"init must be an image \(1, 3, H, W\), got shape "
                                         r"\(3, 8, 8\)"):
        optimize_image(loss, np.zeros((3, 8, 8), np.float32))
    with pytest.raises(ValueError, match="steps must be a positive integer, got 0"):
        optimize_image(loss, np.zeros((1, 3, 8, 8), np.float32), steps=0)
    with pytest.raises(ValueError, match="lr must be positive"):
        ImageOptimizationTrainStep(loss, np.zeros((1, 3, 8, 8), np.float32), lr=0.0)


# ---- the example ------------------------------------------------------------------------------

TINY = ["--image-size", "16", "--batch-size", "2", "--width", "2", "--num-residual", "1",
        "--style-size", "24", "--show-size", "16", "--sample-every", "2",
        "--content", "chelsea", "coffee"]


def test_example_trains_writes_its_files_and_resumes_exactly(tmp_path):
    out = tmp_path / "st"
    m = example.main(TINY + ["--steps", "4", "--out", str(out)])
    for name in ("config.json", "checkpoint.npz", "stylised.png", "style.png", "losses.png",
                 "metrics.json", "metrics.jsonl", "samples/step_000002.png"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["steps"] == 4 and saved["mode"] == "train" and saved["style"] == "mosaic"
    assert saved["train_seconds_per_step"] > 0
    assert {"content", "style", "tv"} <= set(saved["final_losses"]) == set(m["start_losses"])

    # sample(): the content photos stylised at --show-size (16 high, 24 wide), repeated
    x = example.sample(out, 3)
    assert x.shape == (3, 3, 16, 24) and x.dtype == np.float32
    np.testing.assert_array_equal(x[0], x[2])
    y = example.stylize(out, np.random.default_rng(0).uniform(size=(3, 10, 13)))
    assert y.shape == (3, 8, 12)
    with pytest.raises(ValueError, match="--label 1: style transfer has no classes"):
        example.sample(out, 1, label=1)
    from scratchgen import cli
    assert cli.main(["sample", str(out), "--n", "2", "--out", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").is_file()

    # 2 steps, then --resume to 4: the same weights as 4 steps in one go
    split = tmp_path / "split"
    example.main(TINY + ["--steps", "2", "--out", str(split)])
    with pytest.raises(SystemExit, match="already holds a run; pass --resume"):
        example.main(TINY + ["--steps", "4", "--out", str(split)])
    with pytest.raises(SystemExit, match="--width 3 differs from the run's 2"):
        example.main(["--width", "3", "--steps", "4", "--resume", "--out", str(split)])
    example.main(["--steps", "4", "--resume", "--out", str(split)])
    a, _ = example.load_network(out)
    b, _ = example.load_network(split)
    for (k, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items()):
        np.testing.assert_array_equal(np.asarray(p), np.asarray(q), err_msg=k)


def test_example_optimize_writes_the_picture_and_resumes(tmp_path):
    out = tmp_path / "gatys"
    args = ["--optimize", "--style-size", "24", "--show-size", "16", "--content", "coffee",
            "--sample-every", "2", "--out", str(out)]
    m = example.main(args + ["--steps", "3"])
    assert m["mode"] == "optimize" and m["steps"] == 3
    for name in ("stylised.png", "losses.png", "metrics.json", "samples/step_000002.png"):
        assert (out / name).is_file(), name
    assert example.main(["--steps", "5", "--resume", "--out", str(out)])["steps"] == 5
    with pytest.raises(ValueError, match="an --optimize run: it holds one picture"):
        example.sample(out, 1)


def test_example_one_line_errors(tmp_path):
    from PIL import Image

    gray = tmp_path / "gray.png"
    Image.new("L", (32, 32), 128).save(gray)
    cases = [
        (["--style", str(gray)], f"--style: {re.escape(str(gray))}: a grayscale image "
                                 r"\(Pillow mode L\)"),
        (["--style", str(tmp_path / "none.png")], "--style: .*none.png: neither a shipped image"),
        (["--content", "nope.jpg"], "--content: nope.jpg: neither a shipped image"),
        (["--image-size", "18"], "--image-size 18: must be a multiple of 4"),
        (["--vgg-weights", str(tmp_path / "v.npz")], "--vgg-weights .*v.npz: no such file"),
    ]
    for i, (argv, match) in enumerate(cases):
        with pytest.raises(SystemExit, match=match):
            example.main(TINY + ["--steps", "1", "--out", str(tmp_path / f"run{i}")] + argv)
