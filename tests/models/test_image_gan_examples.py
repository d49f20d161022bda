"""The image-GAN examples end to end on the embedded digits (a few steps of tiny networks): the
files a run writes, ``sample()`` round-tripping through the run folder (EMA weights included),
resume, and one-line errors for options the networks or data cannot take."""
from __future__ import annotations

import importlib
import json

import numpy as np
import pytest

from scratchgen.recipes import image_gan
from scratchgen.serialization import load

TINY = ["--steps", "3", "--batch-size", "8", "--width", "4", "--z-dim", "6",
        "--sample-every", "2", "--no-eval"]


def _example(name):
    return importlib.import_module(f"scratchgen.recipes.{name}")


def _has_classifier(data="digits"):
    from scratchgen.metrics.classifier import pretrained_classifier
    try:
        pretrained_classifier(data)
    except (FileNotFoundError, ValueError):
        return False
    return True


def test_dcgan_run_writes_its_files_and_samples_round_trip(tmp_path):
    out = tmp_path / "dcgan"
    m = _example("dcgan").main(TINY + ["--out", str(out)])
    for name in ("config.json", "checkpoint.npz", "samples.png", "interpolation.png",
                 "metrics.json", "metrics.jsonl", "samples/step_000002.png"):
        assert (out / name).is_file(), name
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == "dcgan" and config["options"]["width"] == 4
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["steps"] == 3 and saved["generator_updates"] == 3
    assert saved["train_seconds_per_epoch"] > 0 and m["steps_per_epoch"] == 1500 // 8
    x = _example("dcgan").sample(out, 5, seed=1)
    assert x.shape == (5, 1, 28, 28) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    np.testing.assert_array_equal(x, _example("dcgan").sample(out, 5, seed=1))
    assert not np.array_equal(x, _example("dcgan").sample(out, 5, seed=2))
    with pytest.raises(ValueError, match="--label 3: .*unconditional"):
        _example("dcgan").sample(out, 2, label=3)
    # the run folder is not overwritten; --resume continues it
    with pytest.raises(SystemExit, match="already holds a run; pass --resume"):
        _example("dcgan").main(TINY + ["--out", str(out)])
    more = [a if a != "3" else "5" for a in TINY]
    assert _example("dcgan").main(more + ["--resume", "--out", str(out)])["steps"] == 5


def test_cgan_projection_with_ema_one_row_per_class(tmp_path):
    from PIL import Image

    out = tmp_path / "cgan"
    _example("cgan").main(TINY + ["--cond", "projection", "--ema", "0.9", "--out", str(out)])
    from scratchgen.train.images import png_description

    with Image.open(out / "samples.png") as im:
        width, height = im.size
    assert width > 10 * 28 and height > 10 * 28            # 10 classes x 10 columns, labelled
    assert "row k asks for class k" in png_description(out / "samples.png")
    x = _example("cgan").sample(out, 4, label=7)
    assert x.shape == (4, 1, 28, 28)
    with pytest.raises(ValueError, match="--label 12: out of range for 10 classes"):
        _example("cgan").sample(out, 2, label=12)
    # sample() uses the EMA weights the run kept, not G's own
    state = load(out / "checkpoint.npz")
    shadow = state["train_step"]["ema"]["shadow"]
    own = state["modules"]["generator"]
    assert any(not np.array_equal(np.asarray(shadow[k]), np.asarray(own[k])) for k in shadow)
    G, _ = image_gan.load_generator(_example("cgan").RECIPE, out)
    for k, p in G.named_parameters():
        np.testing.assert_array_equal(p.numpy(), np.asarray(shadow[k]))


@pytest.mark.parametrize("name, extra", [
    ("lsgan", []),
    ("wgan-gp", ["--critic-norm", "layer"]),
    ("sngan", ["--conditional"]),
    ("sagan", []),
])
def test_other_gans_run_a_few_steps(tmp_path, name, extra):
    module = _example(name.replace("-", "_"))
    out = tmp_path / name
    m = module.main(TINY + extra + ["--out", str(out)])
    assert m["model"] == name and (out / "samples.png").is_file()
    assert json.loads((out / "config.json").read_text())["model"] == name
    label = 1 if m["conditional"] else None
    assert module.sample(out, 3, label=label).shape == (3, 1, 28, 28)


@pytest.mark.skipif(not _has_classifier(), reason="the digits classifier's weights are missing")
def test_eval_puts_each_metric_next_to_its_real_baseline(tmp_path):
    out = tmp_path / "cgan_eval"
    m = _example("cgan").main([a for a in TINY if a != "--no-eval"]
                              + ["--eval", "--eval-samples", "60", "--out", str(out)])
    ev = m["eval"]
    assert ev["n"] == 60
    for key in ("fd", "kid_mean", "classifier_score", "precision", "recall",
                "fake_class_kl_uniform"):
        assert key in ev["model"] and key in ev["real_vs_real"]
    assert 0 <= ev["class_accuracy"] <= 1 and ev["class_accuracy_real_test"] > 0.9
    # the baseline: two samples of real digits are much closer than an untrained G's
    assert ev["real_vs_real"]["fd"] < ev["model"]["fd"]


@pytest.mark.parametrize("name, argv, flag, value", [
    ("dcgan", ["--image-size", "30"], "--image-size", "30"),
    ("dcgan", ["--data", "cifar"], "--data", "cifar"),
    ("dcgan", ["--data", "mnist", "--image-size", "64"], "--image-size", "64"),
    ("dcgan", ["--batch-size", "0"], "--batch-size", "0"),
    ("dcgan", ["--batch-size", "5000"], "--batch-size", "5000"),
    ("dcgan", ["--ema", "1.5"], "--ema", "1.5"),
    ("dcgan", ["--ema", "0"], "--ema", "0"),
    ("dcgan", ["--truncation", "0"], "--truncation", "0"),
    ("dcgan", ["--beta1", "1"], "--beta1", "1"),
    ("dcgan", ["--lr-g", "nan"], "--lr-g", "nan"),
    ("dcgan", ["--equation", "7 * 2"], "--equation", "7 * 2"),
    ("cgan", ["--cond", "bogus"], "--cond", "bogus"),
    ("wgan_gp", ["--critic-norm", "batch"], "--critic-norm", "batch"),
    ("sngan", ["--arch", "vit"], "--arch", "vit"),
    ("sngan", ["--image-size", "30"], "--image-size", "30"),
    ("sagan", ["--attention-resolution", "5"], "--attention-resolution", "5"),
])
def test_bad_options_are_one_line_errors(tmp_path, capsys, name, argv, flag, value):
    with pytest.raises(SystemExit) as info:
        _example(name).main(argv + ["--out", str(tmp_path / "run")])
    code = info.value.code
    # argparse's own checks print their line and exit 2; the examples' raise it as the message
    text = capsys.readouterr().err.strip() if isinstance(code, int) else str(code)
    assert code != 0 and flag in text and value in text and "\n" not in text, text
    assert not (tmp_path / "run" / "checkpoint.npz").exists()


def test_scratchgen_eval_on_a_gan_run(tmp_path, capsys):
    if not _has_classifier():
        pytest.skip("the digits classifier is not shipped in this checkout")
    from scratchgen import cli

    out = tmp_path / "dcgan"
    _example("dcgan").main(TINY + ["--out", str(out)])
    capsys.readouterr()
    assert cli.main(["eval", str(out), "--samples", "64"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model"] == "dcgan" and result["n"] == 64
    for part in ("generated", "real_vs_real"):
        assert result[part]["n_fake"] == 64 and result[part]["fd"] >= 0
    # the untrained generator is far from the digits, the test images are not
    assert result["generated"]["fd"] > 3 * result["real_vs_real"]["fd"]
