"""Mode coverage (PacGAN's protocol) on the ring and grid settings, against exact answers."""
from __future__ import annotations

import math

import numpy as np
import pytest

from scratchgen.metrics.modes import (MODE_SETTINGS, mode_coverage, mode_setting,
                                      sample_mode_setting, setting_coverage)

# a 2-D standard Gaussian lies within radius 3 with probability 1 - exp(-9/2)
WITHIN_3_STD = 1.0 - math.exp(-4.5)


def test_the_two_settings_have_the_standard_means_and_spreads():
    means, std = mode_setting("ring")
    assert means.shape == (8, 2) and std == 0.01
    np.testing.assert_allclose(np.hypot(means[:, 0], means[:, 1]), 1.0, atol=1e-6)
    angles = np.sort(np.mod(np.arctan2(means[:, 1], means[:, 0]), 2 * np.pi))
    np.testing.assert_allclose(np.diff(angles), 2 * np.pi / 8, atol=1e-6)
    means, std = mode_setting("grid")
    assert means.shape == (25, 2) and std == 0.05
    grid = {(x, y) for x in (-4, -2, 0, 2, 4) for y in (-4, -2, 0, 2, 4)}
    assert {tuple(int(round(v)) for v in m) for m in means} == grid
    np.testing.assert_allclose(means, np.round(means), atol=1e-6)
    assert set(MODE_SETTINGS) == {"ring", "grid"}
    with pytest.raises(ValueError, match="spiral"):
        mode_setting("spiral")


@pytest.mark.parametrize("name, k", [("ring", 8), ("grid", 25)])
def test_real_samples_cover_every_mode(name, k):
    n = 20000
    samples = sample_mode_setting(name, n, seed=0)
    assert samples.shape == (n, 2)
    out = setting_coverage(name, samples)
    assert out["modes_captured"] == out["num_modes"] == k and out["n_samples"] == n
    # the fraction's standard error is ~0.0008 at n = 20000
    assert out["high_quality_fraction"] == pytest.approx(WITHIN_3_STD, abs=0.004)
    assert sum(out["per_mode_counts"]) == round(out["high_quality_fraction"] * n)
    # multinomial noise alone gives KL ~ (k - 1) / (2 n): 2e-4 for the ring, 6e-4 for the grid
    assert 0.0 <= out["reverse_kl"] < 0.003


def test_three_modes_with_equal_counts_give_log_8_over_3():
    means, std = mode_setting("ring")
    rng = np.random.default_rng(1)
    chosen = [0, 3, 5]
    # offsets inside one std, so every sample is of high quality
    pts = np.concatenate([means[j] + rng.uniform(-0.7, 0.7, (100, 2)) * std for j in chosen])
    out = mode_coverage(pts, means, std)
    assert out["modes_captured"] == 3
    assert out["high_quality_fraction"] == 1.0
    assert out["per_mode_counts"] == [100 if j in chosen else 0 for j in range(8)]
    assert out["reverse_kl"] == pytest.approx(math.log(8 / 3), rel=1e-12)


def test_collapse_onto_one_mode_gives_log_k():
    means, std = mode_setting("grid")
    pts = np.tile(means[12], (50, 1))
    out = mode_coverage(pts, means, std)
    assert out["modes_captured"] == 1 and out["reverse_kl"] == pytest.approx(math.log(25))


def test_off_mode_noise_counts_as_low_quality_and_leaves_the_kl_alone():
    means, std = mode_setting("grid")
    rng = np.random.default_rng(2)
    good = np.repeat(means, 40, axis=0) + rng.uniform(-1, 1, (1000, 2)) * std
    # half-way between grid points, 1 away from the nearest mode = 20 std
    bad = rng.integers(-2, 2, (1000, 2)) * 2.0 + 1.0
    out = mode_coverage(np.concatenate([good, bad]), means, std)
    assert out["modes_captured"] == 25
    assert out["high_quality_fraction"] == 0.5
    assert out["per_mode_counts"] == [40] * 25
    assert out["reverse_kl"] == pytest.approx(0.0, abs=1e-12)


def test_nothing_of_high_quality_captures_nothing():
    means, std = mode_setting("ring")
    out = mode_coverage(np.zeros((10, 2)), means, std)  # the ring's centre, 100 std away
    assert out["modes_captured"] == 0 and out["high_quality_fraction"] == 0.0
    assert out["reverse_kl"] == math.inf


def test_the_threshold_is_three_standard_deviations_from_the_nearest_mode():
    means = np.array([[0.0, 0.0], [10.0, 0.0]])
    pts = np.array([[2.9, 0.0], [0.0, -3.1], [7.5, 0.0], [12.0, 2.0]])
    out = mode_coverage(pts, means, std=1.0)
    assert out["per_mode_counts"] == [1, 2]  # 2.9 in, 3.1 out; 2.5 and sqrt 8 = 2.83 in
    assert out["high_quality_fraction"] == 0.75
    assert mode_coverage(pts, means, std=1.0, threshold=2.6)["per_mode_counts"] == [0, 1]


def test_chunking_does_not_change_the_counts():
    samples = sample_mode_setting("grid", 3000, seed=3) * 1.02
    means, std = mode_setting("grid")
    assert mode_coverage(samples, means, std, chunk=7) == mode_coverage(samples, means, std)


@pytest.mark.parametrize("samples, means, std", [
    (np.zeros((5, 3)), np.zeros((2, 2)), 1.0),
    (np.zeros((5, 2)), np.zeros((2,)), 1.0),
    (np.zeros((5, 2)), np.zeros((2, 2)), 0.0),
])
def test_bad_input_raises(samples, means, std):
    with pytest.raises(ValueError):
        mode_coverage(samples, means, std)
