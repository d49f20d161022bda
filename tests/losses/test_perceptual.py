"""Perceptual losses: Gram matrices, feature reconstruction, style and total variation losses
against their formulas written in NumPy and against closed forms (a known Gram matrix, the
total variation of known images, invariance of a Gram matrix to moving pixels around), float64
first and second derivatives, and ``PerceptualLoss`` put together on a small VGG."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import scratchgen as sg
from scratchgen.losses.perceptual import (
    PerceptualLoss, feature_reconstruction_loss, gram_matrix, style_loss, total_variation_loss,
)
from scratchgen.models.vgg import random_vgg16
from scratchgen.testing import gradcheck, gradgradcheck
from scratchgen.testing import strategies as sgst

FAST = settings(max_examples=15, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def t64(a, requires_grad=False):
    return sg.tensor(np.asarray(a, dtype=np.float64), requires_grad=requires_grad)


# The formulas in NumPy, from the papers rather than from the library's code.
def np_gram(f):
    n, c, h, w = f.shape
    m = f.reshape(n, c, h * w)
    return np.einsum("nip,njp->nij", m, m) / (c * h * w)


def np_content(a, b):
    # Johnson eq. 2 per image, then the batch mean
    b = np.broadcast_to(b, a.shape)
    return np.mean([np.sum((x - y) ** 2) / x.size for x, y in zip(a, b)])


def np_style(feats, grams):
    n = feats[0].shape[0]
    return np.mean([sum(np.sum((np_gram(f)[i] - np.broadcast_to(g, (n,) + g.shape[1:])[i]) ** 2)
                        for f, g in zip(feats, grams)) for i in range(n)])


def np_tv(x):
    # every horizontal and every vertical pair of neighbours, squared, summed; batch mean
    return (np.sum(np.diff(x, axis=3) ** 2) + np.sum(np.diff(x, axis=2) ** 2)) / x.shape[0]


maps = sgst.shapes(min_dims=4, max_dims=4, min_side=1, max_side=3)


# ---- Gram matrix ------------------------------------------------------------------------------

def test_gram_of_a_known_feature_map():
    # two channels over two pixels: F = [[1, 2], [3, 4]], F F^T = [[5, 11], [11, 25]], C H W = 4
    f = t64(np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 1, 2))
    np.testing.assert_allclose(gram_matrix(f).numpy(), [[[1.25, 2.75], [2.75, 6.25]]])


@FAST
@given(sgst.arrays(maps))
def test_gram_matches_formula_and_is_symmetric_psd(a):
    g = gram_matrix(t64(a)).numpy()
    np.testing.assert_allclose(g, np_gram(a), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(g, g.transpose(0, 2, 1))
    assert np.linalg.eigvalsh(g).min() > -1e-12


@FAST
@given(sgst.arrays(maps), st.integers(0, 2**32 - 1))
def test_gram_forgets_where_features_are(a, seed):
    n, c, h, w = a.shape
    perm = np.random.default_rng(seed).permutation(h * w)
    moved = a.reshape(n, c, h * w)[:, :, perm].reshape(n, c, h, w)
    np.testing.assert_allclose(gram_matrix(t64(moved)).numpy(), gram_matrix(t64(a)).numpy(),
                               rtol=1e-12, atol=1e-14)


def test_gram_keeps_float32_and_refuses_other_ranks():
    assert gram_matrix(sg.rand(2, 3, 4, 4)).dtype == np.float32
    with pytest.raises(ValueError, match=r"\(N, C, H, W\).*\(3, 4\)"):
        gram_matrix(sg.rand(3, 4))


# ---- feature reconstruction ---------------------------------------------------------------------

@FAST
@given(sgst.arrays(maps), st.integers(0, 2**32 - 1))
def test_content_loss_matches_johnson_eq2(a, seed):
    b = np.random.default_rng(seed).normal(size=a.shape)
    assert feature_reconstruction_loss(t64(a), t64(b)).item() == pytest.approx(
        np_content(a, b), rel=1e-12, abs=1e-14)
    # one target for the whole batch
    assert feature_reconstruction_loss(t64(a), t64(b[:1])).item() == pytest.approx(
        np_content(a, b[:1]), rel=1e-12, abs=1e-14)


def test_content_loss_of_vectors_and_of_equal_maps():
    a = np.arange(6.0).reshape(2, 3)
    assert feature_reconstruction_loss(t64(a), t64(a + 2)).item() == pytest.approx(4.0)
    x = t64(np.ones((2, 3, 4, 4)))
    assert feature_reconstruction_loss(x, x).item() == 0.0


def test_content_loss_shape_errors():
    with pytest.raises(ValueError, match=r"\(2, 3, 4, 4\).*\(2, 5, 4, 4\)"):
        feature_reconstruction_loss(sg.rand(2, 3, 4, 4), sg.rand(2, 5, 4, 4))
    with pytest.raises(ValueError, match=r"\(3, 3, 4, 4\)"):
        feature_reconstruction_loss(sg.rand(2, 3, 4, 4), sg.rand(3, 3, 4, 4))
    with pytest.raises(ValueError, match=r"\(5,\)"):
        feature_reconstruction_loss(sg.rand(5), sg.rand(5))


# ---- style ------------------------------------------------------------------------------------

def _two_layers(rng, n=2):
    return [rng.normal(size=(n, 3, 4, 4)), rng.normal(size=(n, 2, 2, 3))]


def test_style_loss_matches_formula_and_broadcasts_one_target():
    rng = np.random.default_rng(0)
    feats, style = _two_layers(rng, 3), _two_layers(rng, 1)
    grams = [np_gram(s) for s in style]
    got = style_loss([t64(f) for f in feats], [t64(g) for g in grams]).item()
    assert got == pytest.approx(np_style(feats, grams), rel=1e-12)
    repeated = [t64(np.repeat(g, 3, axis=0)) for g in grams]
    assert style_loss([t64(f) for f in feats], repeated).item() == pytest.approx(got, rel=1e-12)


def test_style_loss_is_zero_for_the_same_image_only():
    rng = np.random.default_rng(1)
    feats = _two_layers(rng)
    same = style_loss([t64(f) for f in feats], [gram_matrix(t64(f)) for f in feats]).item()
    assert same == pytest.approx(0.0, abs=1e-15)
    other = _two_layers(rng)
    assert style_loss([t64(f) for f in feats], [gram_matrix(t64(f)) for f in other]).item() > 0
    # on a loss network: the style image itself scores 0, another image does not
    net = random_vgg16(0, channels=(4, 4, 8, 8))
    x, y = sg.rand(1, 3, 16, 16), sg.rand(1, 3, 16, 16)
    layers = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
    fx, fy = net(x, layers), net(y, layers)
    gx = [gram_matrix(fx[k]) for k in layers]
    assert style_loss(list(fx.values()), gx).item() == pytest.approx(0.0, abs=1e-12)
    assert style_loss(list(fy.values()), gx).item() > 1e-6


def test_style_loss_mean_over_entries_as_the_official_code():
    rng = np.random.default_rng(2)
    feats, style = _two_layers(rng, 2), _two_layers(rng, 1)
    f, g = [t64(x) for x in feats], [gram_matrix(t64(x)) for x in style]
    per_layer = [style_loss([fj], [gj]).item() for fj, gj in zip(f, g)]
    # nn.MSECriterion on the (N, C, C) Gram matrices: the mean over N C^2 entries
    expected = sum(np.mean((np_gram(x) - np_gram(y)) ** 2) for x, y in zip(feats, style))
    assert style_loss(f, g, "mean").item() == pytest.approx(expected, rel=1e-12)
    assert style_loss(f, g, "mean").item() == pytest.approx(
        per_layer[0] / 3 ** 2 + per_layer[1] / 2 ** 2, rel=1e-12)
    with pytest.raises(ValueError, match="reduction must be 'sum'.*got 'max'"):
        style_loss(f, g, "max")


def test_style_loss_errors_name_the_layer_and_shapes():
    f = [sg.rand(2, 3, 4, 4), sg.rand(2, 5, 2, 2)]
    g = [gram_matrix(x) for x in f]
    with pytest.raises(ValueError, match="2 feature maps and 1 Gram"):
        style_loss(f, g[:1])
    with pytest.raises(ValueError, match=r"layer 1.*\(2, 5, 2, 2\).*\(2, 3, 3\)"):
        style_loss(f, [g[0], g[0]])
    with pytest.raises(ValueError, match="0 feature maps"):
        style_loss([], [])


# ---- total variation --------------------------------------------------------------------------

def test_total_variation_of_known_images():
    ramp = np.tile(np.arange(4.0), (3, 1))[None, None]           # 3 x 4, steps of 1 to the right
    assert total_variation_loss(t64(ramp)).item() == pytest.approx(3 * 3)
    checker = np.array([[0.0, 1.0], [1.0, 0.0]])[None, None]      # 4 neighbouring pairs, all 1
    assert total_variation_loss(t64(checker)).item() == pytest.approx(4.0)
    assert total_variation_loss(t64(np.full((2, 3, 5, 5), 0.7))).item() == 0.0
    # averaged over the batch, summed over channels
    batch = np.concatenate([ramp, 2 * ramp])                      # TV 9 and 36
    assert total_variation_loss(t64(batch)).item() == pytest.approx((9 + 36) / 2)
    assert total_variation_loss(t64(np.concatenate([ramp, ramp], 1))).item() == pytest.approx(18)


@FAST
@given(sgst.arrays(maps))
def test_total_variation_matches_formula(a):
    assert total_variation_loss(t64(a)).item() == pytest.approx(np_tv(a), rel=1e-12, abs=1e-14)


# ---- gradients --------------------------------------------------------------------------------

@FAST
@given(sgst.arrays(sgst.shapes(4, 4, 1, 3)))
def test_gram_gradients(a):
    x = t64(a, requires_grad=True)
    gradcheck(gram_matrix, [x])
    gradgradcheck(gram_matrix, [x])


@FAST
@given(sgst.arrays(sgst.shapes(4, 4, 1, 3)), st.integers(0, 2**32 - 1))
def test_content_loss_gradients(a, seed):
    x = t64(a, requires_grad=True)
    y = t64(np.random.default_rng(seed).normal(size=a.shape), requires_grad=True)
    gradcheck(feature_reconstruction_loss, [x, y])
    gradgradcheck(feature_reconstruction_loss, [x, y])


@FAST
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(0, 2**32 - 1),
       st.booleans())
def test_style_loss_gradients(n, c, s, seed, broadcast):
    rng = np.random.default_rng(seed)
    f1 = t64(rng.normal(size=(n, c, s, s + 1)), requires_grad=True)
    f2 = t64(rng.normal(size=(n, c + 1, s, 2)), requires_grad=True)
    m = 1 if broadcast else n
    g1 = t64(np_gram(rng.normal(size=(m, c, 2, 2))), requires_grad=True)
    g2 = t64(np_gram(rng.normal(size=(m, c + 1, 3, 1))), requires_grad=True)

    def fn(a, b, ga, gb):
        return style_loss([a, b], [ga, gb])

    gradcheck(fn, [f1, f2, g1, g2])
    gradgradcheck(fn, [f1, f2, g1, g2])


@FAST
@given(sgst.arrays(sgst.shapes(4, 4, 1, 4)))
def test_total_variation_gradients(a):
    x = t64(a, requires_grad=True)
    gradcheck(total_variation_loss, [x])
    gradgradcheck(total_variation_loss, [x])


# ---- PerceptualLoss ---------------------------------------------------------------------------

SMALL = (4, 4, 8, 8)


def test_perceptual_loss_is_the_weighted_sum_of_its_parts():
    net = random_vgg16(0, channels=SMALL)
    loss_fn = PerceptualLoss(net, content_weight=2.0, style_weight=5.0, tv_weight=1e-3)
    style, content = sg.rand(1, 3, 24, 24), sg.rand(2, 3, 16, 16)
    y = sg.rand(2, 3, 16, 16, requires_grad=True)
    grams = loss_fn.style_targets(style)
    assert [g.shape for g in grams] == [(1, 4, 4), (1, 4, 4), (1, 8, 8), (1, 8, 8)]
    total, parts = loss_fn(y, content, grams)
    assert set(parts) == {"content", "style", "tv"}
    assert total.item() == pytest.approx(2 * parts["content"] + 5 * parts["style"]
                                         + 1e-3 * parts["tv"], rel=1e-5)
    feats = net(y, ("relu2_2", "relu1_2", "relu3_3", "relu4_3"))
    assert parts["content"] == pytest.approx(feature_reconstruction_loss(
        feats["relu2_2"], net(content, ("relu2_2",))["relu2_2"]).item(), rel=1e-5)
    assert parts["style"] == pytest.approx(style_loss(
        [feats[k] for k in ("relu1_2", "relu2_2", "relu3_3", "relu4_3")], grams).item(), rel=1e-5)
    assert parts["tv"] == pytest.approx(total_variation_loss(y).item(), rel=1e-5)
    total.backward()
    assert y.grad is not None and np.abs(y.grad.numpy()).sum() > 0
    assert all(p.grad is None for p in net.parameters())      # the loss network stays fixed


def test_perceptual_loss_style_reduction_mean():
    net = random_vgg16(0, channels=SMALL)
    y, s = sg.rand(1, 3, 16, 16), sg.rand(1, 3, 16, 16)
    summed = PerceptualLoss(net, content_layers=(), style_layers=("relu1_2", "relu3_3"))
    mean = PerceptualLoss(net, content_layers=(), style_layers=("relu1_2", "relu3_3"),
                          style_reduction="mean")
    feats = net(y, ("relu1_2", "relu3_3"))
    grams = summed.style_targets(s)
    each = [style_loss([feats[k]], [g]).item() for k, g in zip(("relu1_2", "relu3_3"), grams)]
    assert summed(y, None, grams)[0].item() == pytest.approx(sum(each), rel=1e-5)
    assert mean(y, None, grams)[0].item() == pytest.approx(each[0] / 16 + each[1] / 64, rel=1e-5)


def test_perceptual_loss_without_content_or_style():
    net = random_vgg16(0, channels=SMALL)
    y = sg.rand(1, 3, 16, 16)
    texture = PerceptualLoss(net, content_layers=())
    total, parts = texture(y, None, texture.style_targets(y))
    assert set(parts) == {"style"} and total.item() == pytest.approx(0.0, abs=1e-10)
    content_only = PerceptualLoss(net, style_layers=())
    assert content_only.style_targets(y) == []
    total, parts = content_only(y, y)
    assert set(parts) == {"content"} and total.item() == 0.0


def test_perceptual_loss_errors():
    net = random_vgg16(0, channels=SMALL)
    with pytest.raises(ValueError, match="'relu5_3'"):
        PerceptualLoss(net, style_layers=("relu1_2", "relu5_3"))
    with pytest.raises(ValueError, match="style_weight must be >= 0, got -1"):
        PerceptualLoss(net, style_weight=-1)
    with pytest.raises(ValueError, match="style_reduction must be 'sum' or 'mean', got 'avg'"):
        PerceptualLoss(net, style_reduction="avg")
    with pytest.raises(ValueError, match="both empty"):
        PerceptualLoss(net, content_layers=(), style_layers=())
    loss_fn = PerceptualLoss(net)
    x = sg.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="needs 4 style Gram matrices.*got 1"):
        loss_fn(x, x, loss_fn.style_targets(x)[:1])
    with pytest.raises(ValueError, match="nothing to compute"):
        PerceptualLoss(net, style_layers=())(x, None)


def test_perceptual_loss_end_to_end_gradient_in_float64():
    net = random_vgg16(0, channels=(2, 3, 3, 4)).double()
    loss_fn = PerceptualLoss(net, content_weight=1.0, style_weight=3.0, tv_weight=0.1)
    rng = np.random.default_rng(3)
    style, content = t64(rng.random((1, 3, 10, 10))), t64(rng.random((2, 3, 8, 8)))
    grams = loss_fn.style_targets(style)
    y = t64(rng.random((2, 3, 8, 8)), requires_grad=True)
    gradcheck(lambda y: loss_fn(y, content, grams)[0], [y], mode="projection", n_projections=6)
