"""The outline edge map of the sketch -> digit task, on images whose outlines are known."""
from __future__ import annotations

import numpy as np
import pytest

from scratchgen.data.edges import edge_map, paired_edges
from scratchgen.data.morphology import dilate


def _img(rows):
    return np.asarray(rows, dtype=np.float32)[None, None]


def test_single_ink_pixel_gives_its_eight_neighbours():
    x = np.zeros((1, 1, 5, 5), np.float32)
    x[0, 0, 2, 2] = 1.0
    expected = np.zeros((5, 5))
    expected[1:4, 1:4] = 1.0
    expected[2, 2] = 0.0                 # the ink itself is not part of its outline
    np.testing.assert_array_equal(edge_map(x)[0, 0], expected)


def test_square_of_ink_gives_the_ring_around_it():
    x = np.zeros((2, 1, 7, 7), np.float32)
    x[:, :, 2:5, 2:5] = 0.8
    e = edge_map(x)
    ring = np.zeros((7, 7))
    ring[1:6, 1:6] = 1.0
    ring[2:5, 2:5] = 0.0
    assert e.dtype == np.float32 and e.shape == x.shape
    np.testing.assert_array_equal(e[0, 0], ring)
    np.testing.assert_array_equal(e[1, 0], ring)
    assert e.sum() == 2 * 16


def test_threshold_and_image_border():
    # a 0.5 counts as ink (>= threshold), a 0.49 does not; outside the image is no ink
    x = _img([[0.5, 0.0, 0.0],
              [0.0, 0.0, 0.0],
              [0.0, 0.0, 0.49]])
    np.testing.assert_array_equal(edge_map(x)[0, 0], [[0, 1, 0], [1, 1, 0], [0, 0, 0]])
    np.testing.assert_array_equal(edge_map(x, threshold=0.4)[0, 0],
                                  [[0, 1, 0], [1, 1, 1], [0, 1, 0]])
    assert edge_map(np.zeros((1, 1, 4, 4))).sum() == 0          # no ink, no outline
    assert edge_map(np.ones((1, 1, 4, 4))).sum() == 0           # all ink: nothing outside it


def test_deterministic_binary_and_disjoint_from_the_ink():
    x = np.random.default_rng(0).uniform(size=(4, 1, 12, 12)).astype(np.float32)
    a, b = edge_map(x), edge_map(x.copy())
    np.testing.assert_array_equal(a, b)
    assert set(np.unique(a)) <= {0.0, 1.0}
    assert not np.any((a > 0) & (x >= 0.5))
    # every outline pixel touches ink: it is in the dilation of the ink
    assert np.all(dilate(x >= 0.5, 3)[a > 0])


def test_coarse_sketch_is_the_outline_of_the_pooled_image():
    x = np.zeros((1, 1, 8, 8), np.float32)
    x[0, 0, 2:4, 2:4] = 1.0                  # one full 2x2 cell: the pooled pixel (1, 1)
    x[0, 0, 6, 6] = 1.0                      # a quarter of cell (3, 3): pooled 0.25, no ink
    pooled = np.zeros((1, 1, 4, 4), np.float32)
    pooled[0, 0, 1, 1] = 1.0
    coarse = edge_map(x, scale=2)
    np.testing.assert_array_equal(coarse, edge_map(pooled).repeat(2, 2).repeat(2, 3))
    assert coarse.sum() == 8 * 4             # 8 coarse outline pixels, each drawn 2x2
    np.testing.assert_array_equal(edge_map(x, scale=1), edge_map(x))
    with pytest.raises(ValueError, match=r"scale 3 must divide the image sides, got shape"):
        edge_map(x, scale=3)
    with pytest.raises(ValueError, match="scale must be a positive integer, got 0"):
        edge_map(x, scale=0)


def test_paired_edges_and_bad_inputs():
    x = np.zeros((3, 1, 6, 6), np.float64)
    x[:, :, 2, 2] = 1.0
    src, tgt = paired_edges(x)
    assert src.dtype == tgt.dtype == np.float32 and src.sum() == 3 * 8
    np.testing.assert_array_equal(tgt, x)
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\), got shape \(6, 6\)"):
        edge_map(np.zeros((6, 6)))
    with pytest.raises(ValueError, match=r"got shape \(2, 3, 6, 6\)"):
        edge_map(np.zeros((2, 3, 6, 6)))
    with pytest.raises(ValueError, match="threshold must be in \\(0, 1\\], got 0"):
        edge_map(x, threshold=0)
