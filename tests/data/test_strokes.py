"""The thin/thick digit domains: erosion and dilation on known images and against a
brute-force reference, the stroke-mass ordering, and the disjoint, deterministic split."""
from __future__ import annotations

import pathlib

import numpy as np
import pytest

from scratchgen.data.strokes import (
    DEFAULT_WINDOW, dilate, erode, load_stroke_domains, stroke_domains, stroke_mass,
)

MNIST_DIR = pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mnist"


def _reference(x, k, reduce):
    """min / max over the window {-(k-1)//2 .. k//2}^2, pixel by pixel, 0 outside."""
    lo, hi = -((k - 1) // 2), k // 2
    h, w = x.shape
    out = np.zeros_like(x)
    for i in range(h):
        for j in range(w):
            vals = [x[i + u, j + v] if 0 <= i + u < h and 0 <= j + v < w else 0.0
                    for u in range(lo, hi + 1) for v in range(lo, hi + 1)]
            out[i, j] = min(vals) if reduce == "min" else max(vals)
    return out


def test_two_pixel_bar_thins_to_one_and_thickens_to_three():
    x = np.zeros((6, 6), np.float32)
    x[1:5, 2:4] = 1.0                       # a bar 4 rows high, 2 columns wide
    thin, thick = np.zeros_like(x), np.zeros_like(x)
    thin[1:4, 2] = 1.0                      # window {0,1}^2: rows 1-3, column 2
    thick[0:5, 1:4] = 1.0                   # rows 0-4, columns 1-3
    np.testing.assert_array_equal(erode(x, 2), thin)
    np.testing.assert_array_equal(dilate(x, 2), thick)


def test_three_pixel_bar_with_a_centred_window():
    x = np.zeros((7, 7), np.float32)
    x[1:6, 2:5] = 0.5
    thin, thick = np.zeros_like(x), np.zeros_like(x)
    thin[2:5, 3] = 0.5
    thick[0:7, 1:6] = 0.5
    np.testing.assert_array_equal(erode(x, 3), thin)
    np.testing.assert_array_equal(dilate(x, 3), thick)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_grey_values_match_the_brute_force_reference(k):
    x = np.random.default_rng(k).random((2, 1, 7, 9)).astype(np.float32)
    e, d = erode(x, k), dilate(x, k)
    assert e.shape == x.shape and e.dtype == x.dtype
    for n in range(2):
        np.testing.assert_array_equal(e[n, 0], _reference(x[n, 0], k, "min"))
        np.testing.assert_array_equal(d[n, 0], _reference(x[n, 0], k, "max"))
    assert (e <= x).all() and (x <= d).all()


def test_stroke_mass_orders_thin_original_thick_on_the_digits():
    (train, _) = load_stroke_domains("digits")
    from scratchgen.data.images import load_image_arrays
    x = load_image_arrays("digits")[0][:200]
    k = DEFAULT_WINDOW["digits"]
    thin, orig, thick = stroke_mass(erode(x, k)), stroke_mass(x), stroke_mass(dilate(x, k))
    assert thin.shape == (200,)
    assert (thin <= orig).all() and (orig <= thick).all()
    assert thin.mean() < 0.8 * orig.mean() and thick.mean() > 1.2 * orig.mean()
    assert stroke_mass(train.a).mean() < stroke_mass(train.b).mean()
    np.testing.assert_allclose(stroke_mass(np.full((3, 1, 4, 4), 0.25)), 0.25)


def test_domains_are_the_disjoint_halves_and_deterministic():
    x = np.random.default_rng(0).random((9, 1, 5, 5)).astype(np.float32)
    y = np.arange(9)
    d = stroke_domains(x, y, 2)
    np.testing.assert_array_equal(d.a, erode(x[:4], 2))
    np.testing.assert_array_equal(d.b, dilate(x[4:], 2))
    np.testing.assert_array_equal(d.a_labels, y[:4])
    np.testing.assert_array_equal(d.b_labels, y[4:])
    again = stroke_domains(x, y, 2)
    for u, v in zip(d, again):
        np.testing.assert_array_equal(u, v)


def test_digits_domains_shapes():
    train, test = load_stroke_domains("digits")
    assert train.a.shape == (750, 1, 28, 28) and train.b.shape == (750, 1, 28, 28)
    assert len(test.a) + len(test.b) == 297 and len(test.a_labels) == len(test.a)
    assert train.a.dtype == np.float32 and 0 <= train.a.min() and train.b.max() <= 1


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="size must be a positive integer, got 0"):
        erode(np.zeros((4, 4)), 0)
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        dilate(np.zeros(4))
    with pytest.raises(ValueError, match="3 images but labels of shape"):
        stroke_domains(np.zeros((3, 1, 4, 4)), np.zeros(2))
    with pytest.raises(ValueError, match="data must be one of .*got 'cifar'"):
        load_stroke_domains("cifar")


@pytest.mark.skipif(not MNIST_DIR.is_dir(), reason="no MNIST in ../shared/data/mnist")
def test_mnist_domains_keep_the_digits_readable():
    from scratchgen.metrics.classifier import pretrained_classifier
    from scratchgen.metrics.features import class_accuracy

    train, test = load_stroke_domains("mnist", str(MNIST_DIR))
    assert train.a.shape == (30000, 1, 28, 28) and len(test.b) == 5000
    clf = pretrained_classifier("mnist")
    assert class_accuracy(test.a[:500], test.a_labels[:500], clf) > 0.8
    assert class_accuracy(test.b[:500], test.b_labels[:500], clf) > 0.9
    assert stroke_mass(test.a).mean() < 0.7 * stroke_mass(test.b).mean()
