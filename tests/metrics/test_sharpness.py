"""Variance of the Laplacian against its closed forms."""
from __future__ import annotations

import numpy as np
import pytest

from scratchgen.metrics.sharpness import (
    laplacian, laplacian_variance, laplacian_variance_per_image,
)


def test_constant_and_linear_images_have_no_laplacian():
    assert laplacian_variance(np.full((2, 1, 8, 8), 0.7)) == 0.0
    i, j = np.mgrid[0:9, 0:7]
    ramp = (0.1 * i - 0.05 * j)[None, None]          # a linear function: Laplacian 0
    np.testing.assert_allclose(laplacian(ramp), 0.0, atol=1e-12)
    assert laplacian_variance(ramp) == pytest.approx(0.0, abs=1e-20)


def test_checkerboard_is_plus_minus_four():
    i, j = np.mgrid[0:10, 0:10]
    board = ((i + j) % 2).astype(np.float64)
    lap = laplacian(board)
    np.testing.assert_array_equal(np.abs(lap), 4.0)
    np.testing.assert_array_equal(lap[board[1:-1, 1:-1] == 1], -4.0)
    assert laplacian_variance_per_image(board) == 16.0
    # variance scales with the square of the contrast
    assert laplacian_variance(0.5 * board[None, None]) == pytest.approx(4.0)


def test_single_bright_pixel():
    # valid 3x3 responses of a delta at the centre of 5x5: -4 once, 1 four times, 0 four times;
    # mean 0, variance (16 + 4) / 9
    x = np.zeros((5, 5))
    x[2, 2] = 1.0
    np.testing.assert_array_equal(laplacian(x), [[0, 1, 0], [1, -4, 1], [0, 1, 0]])
    assert float(laplacian_variance_per_image(x)) == pytest.approx(20.0 / 9.0)


def test_blurring_lowers_it_and_batches_average():
    x = np.random.default_rng(0).uniform(size=(3, 1, 20, 20))
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge")
    blurred = sum(padded[..., a:a + 20, b:b + 20] for a in range(3) for b in range(3)) / 9.0
    sharp, soft = laplacian_variance_per_image(x), laplacian_variance_per_image(blurred)
    assert sharp.shape == (3,) and np.all(soft < 0.2 * sharp)
    assert laplacian_variance(x) == pytest.approx(sharp.mean())


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match=r"got shape \(2, 2\)"):
        laplacian_variance(np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"got shape \(5,\)"):
        laplacian_variance(np.zeros(5))
    with pytest.raises(ValueError, match="dtype"):
        laplacian_variance(np.array([["a"] * 3] * 3))
