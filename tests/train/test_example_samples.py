"""``scratchgen sample RUN`` for the VAE family: each example's ``sample(run, n, label, seed,
device)`` rebuilds the model from the run's config.json and newest checkpoint and gives float32
(N, C, H, W) images in [0, 1] ((N, 2) points for the toy data), the same for the same seed."""
from __future__ import annotations

import importlib

import numpy as np
import pytest

from scratchgen import cli

CASES = {
    "beta-vae": (["--epochs", "1", "--size", "8", "--z-dim", "3", "--variant", "capacity"],
                 (1, 8, 8)),
    "info-vae": (["--epochs", "1", "--size", "8", "--z-dim", "2"], (1, 8, 8)),
    "intro-vae": (["--epochs", "1", "--vae-warmup-epochs", "0", "--batch-size", "256",
                   "--channels", "8", "--z-dim", "4"], (1, 8, 8)),
    "soft-intro-vae": (["--epochs", "1", "--limit", "64", "--eval-images", "20",
                        "--channels", "8", "--z-dim", "4"], (1, 8, 8)),
    "soft-intro-vae-toy": (["--steps", "4", "--vae-warmup", "2", "--hidden", "16",
                            "--batch-size", "64", "--pool", "512", "--eval-samples", "512",
                            "--grid", "10"], (2,)),
    "hierarchical-vae": (["--epochs", "1", "--limit", "64", "--k", "2"], (1, 8, 8)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_sample_from_a_finished_run(tmp_path, name):
    module = importlib.import_module(f"scratchgen.recipes.{cli.MODELS[name][0]}")
    args, shape = CASES[name]
    module.main(args + ["--out", str(tmp_path)])
    x = module.sample(tmp_path, 5, seed=1)
    assert x.dtype == np.float32 and x.shape == (5,) + shape
    assert np.isfinite(x).all()
    if len(shape) == 3:
        assert 0 <= x.min() <= x.max() <= 1
    np.testing.assert_array_equal(x, module.sample(tmp_path, 5, seed=1))
    assert not np.array_equal(x, module.sample(tmp_path, 5, seed=2))
    with pytest.raises(ValueError, match="--label 3: .* unconditional"):
        module.sample(tmp_path, 5, label=3)
    with pytest.raises(ValueError, match="is a run of"):   # another model's run
        other = "vae" if name != "vae" else "beta-vae"
        importlib.import_module(f"scratchgen.recipes.{cli.MODELS[other][0]}").sample(tmp_path, 1)
