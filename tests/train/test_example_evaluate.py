"""``scratchgen eval RUN``: the model's ``evaluate(run, device, ...)`` on the run's newest
checkpoint, printed as one JSON object on stdout; its keyword parameters are the command's
flags. The VAE family reports the IWAE bound and the ELBO from the same samples (ELBO <= IWAE
image by image), the IntroVAEs their test MSE and KLs, the VQ-VAE its MSE and code use."""
from __future__ import annotations

import json
import types

import numpy as np
import pytest

from scratchgen import cli
from scratchgen.train import write_run_config

CASES = {
    "vae": (["--size", "8", "--hidden", "16", "--iwae-k", "0", "--epochs", "1"],
            {"iwae", "elbo", "k", "images", "step"}),
    "beta-vae": (["--epochs", "1", "--size", "8", "--z-dim", "3", "--variant", "capacity"],
                 {"iwae", "elbo", "k", "images", "step"}),
    "info-vae": (["--epochs", "1", "--size", "8", "--z-dim", "2"], {"iwae", "elbo", "k"}),
    "hierarchical-vae": (["--epochs", "1", "--limit", "64", "--k", "2"],
                         {"iwae", "elbo", "kl_per_layer", "variant", "k", "images", "step"}),
    "intro-vae": (["--epochs", "1", "--vae-warmup-epochs", "0", "--batch-size", "256",
                   "--channels", "8", "--z-dim", "4"],
                  {"test_rec_mse", "kl_real", "kl_rec", "kl_fake", "images", "step"}),
    "soft-intro-vae": (["--epochs", "1", "--limit", "64", "--eval-images", "20",
                        "--channels", "8", "--z-dim", "4"],
                       {"test_rec_mse", "kl_real", "kl_rec", "kl_fake", "images", "step"}),
    "vq-vae": (["--epochs", "1", "--size", "8", "--limit", "128", "--num-embeddings", "16"],
               {"test_normalized_mse", "test_perplexity", "test_dead_codes", "codebook_size"}),
}


def _eval(capsys, *args):
    try:
        code = cli.main(["eval", *map(str, args)])
    except SystemExit as exc:  # argparse's refusals: the one line is printed already
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("name", list(CASES))
def test_eval_prints_one_json_object(tmp_path, capsys, name):
    import importlib

    args, keys = CASES[name]
    module = importlib.import_module(f"scratchgen.recipes.{cli.MODELS[name][0]}")
    module.main(args + ["--out", str(tmp_path)])
    capsys.readouterr()
    flags = ["--images", "20"] + (["--k", "4"] if "k" in keys else [])
    code, out, err = _eval(capsys, tmp_path, *flags)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["model"] == name and result["run"] == str(tmp_path)
    assert keys <= set(result), sorted(result)
    assert result["step"] > 0 and 0 < result["images"] <= 20
    if "iwae" in result:
        assert result["k"] == 4 and result["elbo"] <= result["iwae"] < 0
    # the same seed gives the same figures; the numbers are finite
    assert _eval(capsys, tmp_path, *flags)[1] == out
    assert all(np.isfinite(v) for v in result.values() if isinstance(v, float))


def test_eval_help_lists_the_models_options(tmp_path, capsys):
    write_run_config(tmp_path, "vae", {})
    with pytest.raises(SystemExit) as exc:
        cli.main(["eval", str(tmp_path), "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for text in ("--k K", "importance samples per image", "(default 64)", "--images IMAGES",
                 "--seed SEED", "--device DEVICE"):
        assert text in out


@pytest.mark.parametrize("make, args, message", [
    (None, [], "no such run folder"),
    ("softmax-regression", [], "evaluating 'softmax-regression' runs is not supported"),
    ("vae", ["--k", "two"], "argument --k: 'two' is not an integer"),
    ("vae", ["--k", "0"], "--k 0: the bound needs at least one importance sample"),
    ("vae", ["--images", "0"], "--images 0: must be at least 1"),
    ("vae", ["--colour", "red"], "unrecognized arguments: --colour red"),
    ("vae", [], "no checkpoint yet"),
])
def test_eval_refuses_with_one_line(tmp_path, capsys, make, args, message):
    run = tmp_path / "run"
    if make is not None:
        write_run_config(run, make, {})
    code, out, err = _eval(capsys, run, *args)
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and len(lines) == 1 and message in lines[0], err


def test_eval_flags_come_from_the_signature(tmp_path, capsys, monkeypatch):
    """Any model's ``evaluate``: flags typed by annotation or default, help from ``Args:``,
    its prints moved to stderr, NaN as null, arrays as lists."""
    seen = {}

    def evaluate(run, device: str = "cpu", eval_samples: int | None = None, scale: float = 1.0,
                 ema: bool = False, kind: str = "fid") -> dict:
        """Metrics.

        Args:
            eval_samples: how many samples to
                draw
            kind: which metric
        """
        seen.update(run=run, device=device, eval_samples=eval_samples, scale=scale, ema=ema,
                    kind=kind)
        print("progress that must not reach stdout")
        return {"fid": float("nan"), "per_class": np.arange(3), "count": np.int64(2)}

    module = types.SimpleNamespace(evaluate=evaluate, __name__="fake")
    monkeypatch.setattr(cli, "_example", lambda run: ("fake-gan", module))
    code, out, err = _eval(capsys, tmp_path, "--eval-samples", "500", "--scale", "0.5",
                           "--ema", "--kind", "kid")
    assert code == 0 and "progress that must not reach stdout" in err
    assert json.loads(out) == {"model": "fake-gan", "run": str(tmp_path), "fid": None,
                               "per_class": [0, 1, 2], "count": 2}
    assert seen == dict(run=tmp_path, device="cpu", eval_samples=500, scale=0.5, ema=True,
                        kind="kid")
    with pytest.raises(SystemExit):
        cli.main(["eval", str(tmp_path), "--help"])
    assert "how many samples to draw (default None)" in capsys.readouterr().out
    # a function whose signature does not fit is refused, not called with the wrong arguments
    module.evaluate = lambda step, args, seed: {}
    code, out, err = _eval(capsys, tmp_path)
    assert code == 2 and "evaluating 'fake-gan' runs is not supported" in err


def _finished_run(tmp_path, name, args):
    import importlib

    module = importlib.import_module(f"scratchgen.recipes.{cli.MODELS[name][0]}")
    module.main(args + ["--out", str(tmp_path)])
    return module


def _json_of(capsys, run, *flags):
    code, out, err = _eval(capsys, run, *flags)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert all(np.isfinite(v) for v in result.values() if isinstance(v, float)), result
    # deterministic: the same options give the same figures
    assert _eval(capsys, run, *flags)[1] == out
    return result


def test_eval_pixelcnn_prior(tmp_path, capsys):
    _finished_run(tmp_path, "pixelcnn-prior",
                  ["--epochs", "1", "--size", "8", "--vqvae-epochs", "1", "--channels", "8",
                   "--layers", "2", "--first-kernel", "3"])
    capsys.readouterr()
    summary = json.loads((tmp_path / "summary.json").read_text())
    result = _json_of(capsys, tmp_path)
    assert {"test_nats_per_code", "nats_per_image", "uniform_nats_per_code", "num_codes",
            "images", "data", "step"} <= set(result)
    assert result["model"] == "pixelcnn-prior" and result["step"] > 0
    # every test map: the figure training reported, at most a little above ln K
    assert result["test_nats_per_code"] == pytest.approx(summary["test_nats_per_code"],
                                                         rel=1e-6)
    assert 0 < result["test_nats_per_code"] < 1.2 * result["uniform_nats_per_code"]
    part = _json_of(capsys, tmp_path, "--images", "20")
    assert part["images"] == 20 and part["nats_per_image"] == pytest.approx(
        part["test_nats_per_code"] * 4)


def test_eval_vq_vae2(tmp_path, capsys):
    _finished_run(tmp_path, "vq-vae2",
                  ["--epochs", "1", "--size", "8", "--hidden", "8", "--num-embeddings", "8",
                   "--prior-epochs", "1", "--prior-channels", "8", "--prior-layers", "2"])
    capsys.readouterr()
    summary = json.loads((tmp_path / "summary.json").read_text())
    result = _json_of(capsys, tmp_path)
    assert {"test_normalized_mse", "top_nats_per_code", "bottom_nats_per_code", "num_codes",
            "images", "data", "step"} <= set(result)
    assert result["model"] == "vq-vae2" and result["step"] > 0
    assert result["test_normalized_mse"] == pytest.approx(summary["test_normalized_mse"],
                                                          rel=1e-5)
    assert 0 < result["test_normalized_mse"] < 5
    for level in ("top", "bottom"):
        assert result[f"{level}_nats_per_code"] == pytest.approx(
            summary[f"{level}_prior"][-1]["val_nats_per_code"], rel=1e-5)
        assert 0 < result[f"{level}_nats_per_code"] < 1.5 * np.log(result["num_codes"])
    assert _json_of(capsys, tmp_path, "--images", "20")["images"] == 20


def test_eval_soft_intro_vae_toy(tmp_path, capsys):
    _finished_run(tmp_path, "soft-intro-vae-toy",
                  ["--steps", "4", "--vae-warmup", "2", "--hidden", "16", "--batch-size", "64",
                   "--pool", "512", "--eval-samples", "512", "--grid", "10"])
    capsys.readouterr()
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    result = _json_of(capsys, tmp_path)
    assert {"kl_real_to_model", "jsd", "outside_fraction_model", "kl_code_convention",
            "jsd_code_convention", "dataset", "samples", "bins", "step"} <= set(result)
    assert result["model"] == "soft-intro-vae-toy" and result["step"] == 4
    assert result["samples"] == 512 and result["dataset"] == "ring"
    # the run's own seeds and sample count: the figures of its metrics.json
    for key in ("kl_real_to_model", "jsd", "kl_code_convention", "jsd_code_convention"):
        assert result[key] == pytest.approx(metrics[key], rel=1e-9)
    assert result["kl_real_to_model"] >= 0 and 0 <= result["jsd"] <= np.log(2) + 1e-9
    assert 0 <= result["outside_fraction_model"] <= 1
    fewer = _json_of(capsys, tmp_path, "--samples", "300")
    assert fewer["samples"] == 300 and 0 <= fewer["jsd"] <= np.log(2) + 1e-9
