"""The VQ-VAE, PixelCNN-prior and VQ-VAE-2 example scripts end to end on the embedded digits
(tiny settings): files, shapes and ranges of what they write, and resuming."""
from __future__ import annotations

import importlib
import json
import math

import numpy as np
import pytest

from scratchgen.serialization import load
from scratchgen.train import write_run_config


def _example(name):
    return importlib.import_module(f"scratchgen.recipes.{name}")


def test_vq_vae_then_its_prior(tmp_path):
    vq_out, prior_out = tmp_path / "vq", tmp_path / "prior"
    assert _example("vq_vae").main(["--epochs", "1", "--out", str(vq_out)]) == 0
    s = json.loads((vq_out / "summary.json").read_text())
    assert [row["epoch"] for row in s["epochs"]] == [1]
    assert 0 < s["test_normalized_mse"] < 1.5 and 1 <= s["test_perplexity"] <= 128
    codes = np.load(vq_out / "codes.npz")
    assert codes["train"].shape[1:] == (7, 7) and codes["test"].shape[1:] == (7, 7)
    assert codes["train"].min() >= 0 and codes["train"].max() < 128
    for name in ("vqvae.npz", "reconstructions.png", "codebook_use.png"):
        assert (vq_out / name).is_file(), name

    # one more epoch continues the run rather than restarting it
    assert _example("vq_vae").main(["--epochs", "2", "--resume", "--out", str(vq_out)]) == 0
    rows = [json.loads(line) for line in (vq_out / "metrics.jsonl").read_text().splitlines()]
    assert [r["eval"]["epoch"] for r in rows if "eval" in r] == [1.0, 2.0]

    assert _example("pixelcnn_prior").main(
        ["--vqvae", str(vq_out / "vqvae.npz"), "--epochs", "1", "--channels", "8",
         "--layers", "2", "--out", str(prior_out)]) == 0
    p = json.loads((prior_out / "summary.json").read_text())
    # after one epoch the prior beats the uniform distribution over the 128 codes
    assert 0 < p["test_nats_per_code"] < math.log(128)
    for name in ("prior.npz", "samples.png", "samples_codes.png"):
        assert (prior_out / name).is_file(), name
    # `scratchgen sample`: images through the prior and the VQ-VAE's decoder, reproducible
    x = _example("pixelcnn_prior").sample(prior_out, 3, seed=1)
    assert x.dtype == np.float32 and x.shape == (3, 1, 28, 28) and 0 <= x.min() <= x.max() <= 1
    np.testing.assert_array_equal(x, _example("pixelcnn_prior").sample(prior_out, 3, seed=1))
    with pytest.raises(ValueError, match="this prior is unconditional"):
        _example("pixelcnn_prior").sample(prior_out, 3, label=2)
    with pytest.raises(ValueError, match="a VQ-VAE has no prior of its own to sample from"):
        _example("vq_vae").sample(vq_out, 3)

    # with dropout and Polyak averaging: validation uses the averaged weights, which are what
    # prior.npz keeps; a resumed run restores the average too
    ema_out = tmp_path / "prior_ema"
    args = ["--vqvae", str(vq_out / "vqvae.npz"), "--channels", "8", "--layers", "2",
            "--dropout", "0.1", "--ema", "0.9", "--out", str(ema_out)]
    assert _example("pixelcnn_prior").main(args + ["--epochs", "1"]) == 0
    assert _example("pixelcnn_prior").main(args + ["--epochs", "2", "--resume"]) == 0
    e = json.loads((ema_out / "summary.json").read_text())
    assert [r["epoch"] for r in e["epochs"]] == [1, 2]   # the resumed run keeps epoch 1
    last = e["epochs"][-1]
    assert last["val_nats_per_code"] != last["val_nats_per_code_raw"]
    assert e["test_nats_per_code"] == last["val_nats_per_code"]
    assert e["config"]["dropout"] == 0.1
    ema = load(ema_out / "checkpoint.npz")["extras"]["ema"]
    assert ema["num_updates"] == 24 and ema["decay"] == 0.9   # 2 epochs of 12 steps

    # a held-out fifth of the training maps picks the epoch whose weights are kept; the test
    # figure reported is the one logged for that epoch
    split_args = ["--vqvae", str(vq_out / "vqvae.npz"), "--channels", "8", "--layers", "2",
                  "--lr", "0.03", "--no-cosine", "--val-split", "0.2"]
    split_out = tmp_path / "prior_split"
    assert _example("pixelcnn_prior").main(split_args + ["--epochs", "3",
                                                         "--out", str(split_out)]) == 0
    s = json.loads((split_out / "summary.json").read_text())
    rows = s["epochs"]
    best = min(rows, key=lambda r: r["val_nats_per_code"])
    assert s["best_epoch"] == best["epoch"] == rows[-1]["best_epoch"]
    assert math.isclose(s["heldout_nats_per_code"], best["val_nats_per_code"], rel_tol=1e-6)
    assert math.isclose(s["test_nats_per_code"], best["test_nats_per_code"], rel_tol=1e-6)
    assert all(r["val_nats_per_code"] != r["test_nats_per_code"] for r in rows)
    # stopped after 2 epochs and resumed: the kept weights came through the checkpoint
    resumed = tmp_path / "prior_split_resumed"
    assert _example("pixelcnn_prior").main(split_args + ["--epochs", "2",
                                                         "--out", str(resumed)]) == 0
    assert _example("pixelcnn_prior").main(split_args + ["--epochs", "3", "--resume",
                                                         "--out", str(resumed)]) == 0
    r = json.loads((resumed / "summary.json").read_text())
    assert r["best_epoch"] == s["best_epoch"]
    assert r["test_nats_per_code"] == s["test_nats_per_code"]

    # --refit: a held-out run (written to OUT/select) chooses the epoch count E, then all the
    # training maps are fitted from the same start under the same 3-epoch cosine, stopped after
    # E: exactly the run without --val-split stopped there
    refit_args = [a for a in split_args if a != "--no-cosine"] + ["--epochs", "3", "--refit"]
    plain_args = [a for a in refit_args if a not in ("--val-split", "0.2", "--refit")]
    refit_out, plain_out = tmp_path / "prior_refit", tmp_path / "prior_plain"
    assert _example("pixelcnn_prior").main(refit_args + ["--out", str(refit_out)]) == 0
    assert _example("pixelcnn_prior").main(plain_args + ["--out", str(plain_out)]) == 0
    plain = json.loads((plain_out / "summary.json").read_text())["epochs"]

    def check_refit(out, chosen):
        f = json.loads((out / "summary.json").read_text())
        assert f["refit_epochs"] == chosen == f["selection"]["best_epoch"]
        assert [r["epoch"] for r in f["epochs"]] == list(range(1, chosen + 1))
        assert [r["val_nats_per_code"] for r in f["epochs"]] == \
            [r["val_nats_per_code"] for r in plain[:chosen]]
        assert math.isclose(f["test_nats_per_code"], plain[chosen - 1]["val_nats_per_code"],
                            rel_tol=1e-6)

    chosen = json.loads((refit_out / "select" / "summary.json").read_text())["best_epoch"]
    check_refit(refit_out, chosen)
    # a resumed refit reads the selection instead of redoing it: handed another epoch count,
    # it stops there (so one of the two refits stops before the end of the schedule)
    other = 1 if chosen != 1 else 2
    forced = tmp_path / "prior_refit_forced"
    # a run stopped after its selection, before the refit's first checkpoint
    write_run_config(forced, "pixelcnn-prior", _example("pixelcnn_prior").parser().parse_args(
        refit_args + ["--out", str(forced)]))
    (forced / "select").mkdir(parents=True)
    selection = {"best_epoch": other, "heldout_nats_per_code": 1.0, "test_nats_per_code": 1.0}
    (forced / "select" / "summary.json").write_text(json.dumps(selection))
    assert _example("pixelcnn_prior").main(refit_args + ["--resume", "--out", str(forced)]) == 0
    check_refit(forced, other)
    (forced / "select" / "summary.json").write_text(json.dumps({**selection, "best_epoch": 5}))
    with pytest.raises(ValueError, match=r"stop_after must be in 1\.\.3, got 5"):
        _example("pixelcnn_prior").main(refit_args + ["--resume", "--out", str(forced)])

    # options that cannot work are refused by name, before any training
    for bad, message in ((["--val-split", "1.0"], "--val-split must be in"),
                         (["--ema-warmup"], "needs --ema"),
                         (["--refit"], "needs --val-split"),
                         (["--val-split", "1e-9"], "holds out none")):
        with pytest.raises(SystemExit, match=message):
            _example("pixelcnn_prior").main(["--vqvae", str(vq_out / "vqvae.npz"), "--epochs", "1",
                                             "--out", str(tmp_path / "bad")] + bad)


def test_vq_vae2_example(tmp_path):
    assert _example("vq_vae2").main(
        ["--epochs", "1", "--prior-epochs", "2", "--prior-layers", "2", "--prior-channels", "8",
         "--out", str(tmp_path)]) == 0
    s = json.loads((tmp_path / "summary.json").read_text())
    row = s["epochs"][0]
    assert set(row) >= {"test_normalized_mse", "top_perplexity", "top_dead_codes",
                        "bottom_perplexity", "bottom_dead_codes", "seconds"}
    assert 0 < s["test_normalized_mse"] < 1.5
    top = [r["val_nats_per_code"] for r in s["top_prior"]]
    bottom = [r["val_nats_per_code"] for r in s["bottom_prior"]]
    assert 0 < top[-1] < math.log(64)  # beats the uniform distribution over the 64 codes
    assert len(bottom) == 2 and 0 < bottom[1] < bottom[0]  # (a tiny prior starts above it)
    for name in ("vqvae2.npz", "priors.npz", "reconstructions.png", "samples.png"):
        assert (tmp_path / name).is_file(), name
    x = _example("vq_vae2").sample(tmp_path, 2, seed=0)
    assert x.dtype == np.float32 and x.shape == (2, 1, 28, 28) and 0 <= x.min() <= x.max() <= 1
