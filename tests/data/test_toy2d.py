"""2D toy sets and their exact densities."""
from __future__ import annotations

import numpy as np
import pytest

from scratchgen.data import (
    checkerboard,
    grid_of_gaussians,
    ring_of_gaussians,
    toy_dataset,
    toy_density,
    two_spirals,
)


@pytest.mark.parametrize("name", ["ring", "grid", "spirals", "checkerboard"])
def test_shapes_dtype_determinism(name):
    a = toy_dataset(name, 501, seed=7)
    b = toy_dataset(name, 501, seed=7)
    c = toy_dataset(name, 501, seed=8)
    assert a.points.shape == (501, 2) and a.points.dtype == np.float32
    np.testing.assert_array_equal(a.points, b.points)
    assert not np.array_equal(a.points, c.points)
    if name in ("ring", "grid"):
        assert a.means.dtype == np.float32
    else:
        assert a.means is None


def test_mixture_means():
    _, ring = ring_of_gaussians(10, seed=0)
    assert ring.shape == (8, 2)
    np.testing.assert_allclose(np.linalg.norm(ring, axis=1), 2.0, rtol=1e-6)
    np.testing.assert_allclose(ring[0], [2.0, 0.0], atol=1e-6)
    _, grid = grid_of_gaussians(10, seed=0)
    assert grid.shape == (25, 2)
    assert sorted(set(grid[:, 0].tolist())) == [-4.0, -2.0, 0.0, 2.0, 4.0]
    assert ring_of_gaussians(0).points.shape == (0, 2)


@pytest.mark.parametrize("sampler,std", [(ring_of_gaussians, 0.02), (grid_of_gaussians, 0.05)])
def test_samples_sit_on_their_modes(sampler, std):
    points, means = sampler(4000, seed=1)
    d = np.linalg.norm(points[:, None, :] - means[None], axis=2)
    nearest = d.min(axis=1)
    # |x - mu|^2 / std^2 ~ chi2(2): P(|x - mu| < 3 std) = 1 - exp(-4.5)
    assert abs(np.mean(nearest < 3 * std) - (1 - np.exp(-4.5))) < 0.01
    counts = np.bincount(d.argmin(axis=1), minlength=len(means))
    assert counts.min() > 0.6 * 4000 / len(means)


@pytest.mark.parametrize("name,params,n", [
    ("ring", {}, 1000),            # std 0.02: cells of 0.0052
    ("ring", {"std": 0.3, "k": 3}, 300),
    ("grid", {}, 800),
    ("checkerboard", {}, 400),
])
def test_density_integrates_to_one(name, params, n):
    density = toy_density(name, **params)
    xs, ys, logp = density.grid(n)
    cell = (xs[1] - xs[0]) * (ys[1] - ys[0])
    assert abs(np.exp(logp).sum() * cell - 1.0) < 1e-3


def test_density_values():
    ring = toy_density("ring", std=0.1)
    at_mean = ring.log_prob(np.array([[2.0, 0.0]]))[0]
    np.testing.assert_allclose(at_mean, np.log(1 / 8 / (2 * np.pi * 0.01)), rtol=1e-6)
    board = toy_density("checkerboard")
    lp = board.log_prob(np.array([[0.5, 0.5], [0.5, -0.5], [5.0, 0.0], [-3.0, -3.0]]))
    np.testing.assert_allclose(lp[[0, 3]], np.log(1 / 32))
    assert np.isneginf(lp[[1, 2]]).all()
    assert np.isfinite(board.log_prob(checkerboard(2000, seed=0).points)).all()


def test_sample_log_likelihood_matches_entropy():
    # For well-separated modes, E[log p(x)] = -log K - log(2 pi e sigma^2).
    points, _ = grid_of_gaussians(20000, std=0.05, seed=2)
    mean_lp = toy_density("grid", std=0.05).log_prob(points).mean()
    entropy = np.log(25) + np.log(2 * np.pi * np.e * 0.05**2)
    np.testing.assert_allclose(mean_lp, -entropy, atol=0.03)


def test_spirals_have_no_density_and_unknown_names_fail():
    assert two_spirals(10, seed=0).points.shape == (10, 2)
    with pytest.raises(ValueError, match="closed-form"):
        toy_density("spirals")
    with pytest.raises(ValueError, match="unknown toy"):
        toy_dataset("moons", 10)
    with pytest.raises(TypeError):
        toy_density("ring", sigma=1.0)
