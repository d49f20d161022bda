"""KL and JSD between 2-D histograms (scratchgen.metrics.toy)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchgen.metrics.toy import (
    histogram_2d, js_divergence, kl_divergence, sample_divergences,
    soft_intro_vae_code_divergences,
)

pmfs = st.lists(st.floats(0.0, 10.0, allow_nan=False), min_size=2, max_size=12).filter(
    lambda v: sum(v) > 1e-3)


def test_identical_histograms_give_zero():
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(2000, 2))
    p = histogram_2d(pts, bins=20, range=3.0)
    assert kl_divergence(p, p) == 0.0
    assert js_divergence(p, p) == 0.0
    d = sample_divergences(pts, pts.copy(), bins=20, range=3.0)
    assert d["kl"] == 0.0 and d["jsd"] == 0.0


def test_hand_computed_example():
    p = np.array([0.5, 0.5, 0.0])
    q = np.array([0.25, 0.25, 0.5])
    # KL(P||Q) = 0.5 log 2 + 0.5 log 2 = log 2 (exact, no empty cell of Q under P's mass)
    assert kl_divergence(p, q, eps=0.0) == pytest.approx(math.log(2.0), abs=1e-12)
    # M = (0.375, 0.375, 0.25): KL(P||M) = log(4/3); KL(Q||M) = 0.5 log(2/3) + 0.5 log 2
    expected = 0.5 * math.log(4 / 3) + 0.5 * (0.5 * math.log(2 / 3) + 0.5 * math.log(2.0))
    assert js_divergence(p, q) == pytest.approx(expected, abs=1e-12)
    # unnormalized counts are normalized first
    assert js_divergence(p * 7, q * 3) == pytest.approx(expected, abs=1e-12)


def test_smoothing_formula_for_an_empty_cell():
    p = np.array([0.5, 0.5])
    q = np.array([1.0, 0.0])
    assert kl_divergence(p, q, eps=0.0) == math.inf
    eps = 1e-3
    pt = (p + eps) / (1 + 2 * eps)
    qt = (q + eps) / (1 + 2 * eps)
    expected = float(np.sum(pt * np.log(pt / qt)))
    assert kl_divergence(p, q, eps=eps) == pytest.approx(expected, rel=1e-12)


def test_disjoint_supports_give_log2_jsd():
    assert js_divergence([1.0, 0.0], [0.0, 1.0]) == pytest.approx(math.log(2.0), abs=1e-15)


@settings(max_examples=60, deadline=None)
@given(pmfs, st.data())
def test_jsd_symmetric_and_bounded(p, data):
    q = data.draw(st.lists(st.floats(0.0, 10.0, allow_nan=False), min_size=len(p),
                           max_size=len(p)).filter(lambda v: sum(v) > 1e-3))
    a, b = js_divergence(p, q), js_divergence(q, p)
    assert a == pytest.approx(b, abs=1e-12)
    assert 0.0 <= a <= math.log(2.0)
    assert kl_divergence(p, q) >= -1e-12


def test_histogram_counts_and_outside_cell():
    pts = np.array([[0.1, 0.1], [0.9, 0.9], [0.6, 0.1], [5.0, 0.0]])
    h = histogram_2d(pts, bins=2, range=((0.0, 1.0), (0.0, 1.0)))
    # cells (x-bin, y-bin) row-major: (0,0) (0,1) (1,0) (1,1), then outside
    assert h.tolist() == [0.25, 0.0, 0.25, 0.25, 0.25]
    inside = histogram_2d(pts, bins=2, range=((0.0, 1.0), (0.0, 1.0)), outside=False)
    assert inside.shape == (2, 2) and inside.sum() == pytest.approx(1.0)
    d = sample_divergences(pts, pts[:3], bins=2, range=((0.0, 1.0), (0.0, 1.0)))
    assert d["outside_real"] == 0.25 and d["outside_fake"] == 0.0


def test_kl_detects_a_missing_mode():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(20000, 2)) * 0.1 + rng.choice([-1.0, 1.0], size=(20000, 1))
    b = rng.normal(size=(20000, 2)) * 0.1 + 1.0          # only one of the two modes
    c = rng.normal(size=(20000, 2)) * 0.1 + rng.choice([-1.0, 1.0], size=(20000, 1))
    good = sample_divergences(a, c, bins=40, range=2.0)
    bad = sample_divergences(a, b, bins=40, range=2.0)
    assert bad["kl"] > 5.0 > good["kl"]
    assert bad["jsd"] > 0.2 > good["jsd"]
    assert bad["jsd"] <= math.log(2.0)


def test_soft_intro_vae_code_convention():
    rng = np.random.default_rng(2)
    a = rng.uniform(-2, 2, size=(5000, 2))
    same = soft_intro_vae_code_divergences(a, a)
    assert same["kl"] == pytest.approx(0.0, abs=1e-9)
    assert same["jsd"] == pytest.approx(0.0, abs=1e-9)
    # the code's KL is the frequency KL divided by (bin area * bins) (density scaling)
    b = rng.uniform(-2, 2, size=(5000, 2)) * 0.5
    p = histogram_2d(a, 10, 2.0, outside=False)
    q = histogram_2d(b, 10, 2.0, outside=False)
    area = (4.0 / 10) ** 2
    mask = p > 0
    q_d = q / area
    kl_dens = float(np.sum((p / area)[mask] * (np.log((p / area)[mask])
                                               - np.log(q_d[mask] + 1e-14)))) / 10
    assert soft_intro_vae_code_divergences(a, b, bins=10)["kl"] == pytest.approx(kl_dens, rel=1e-9)


def test_bad_inputs():
    with pytest.raises(ValueError):
        histogram_2d(np.zeros((3, 3)))
    with pytest.raises(ValueError):
        kl_divergence([0.5, 0.5], [1.0])
    with pytest.raises(ValueError):
        js_divergence([0.0, 0.0], [1.0, 0.0])
