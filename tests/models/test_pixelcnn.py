"""Gated PixelCNN prior: causality by exact gradients (the logits at position i depend on the
inputs strictly before i and, with enough layers, on all of them: no blind spot), the sampler
(raster order, exactness, the categorical draw), conditioning, and float64 gradient checks of
the cross-entropy loss."""
from __future__ import annotations

import numpy as np
import pytest

import scratchgen as sg
from scratchgen.models.pixelcnn import PixelCNN, PixelCNNTrainStep, _draw
from scratchgen.testing import gradcheck


def _dependence(fn, x, r, c):
    """Which input positions (H, W) the output at (r, c) depends on: nonzero gradient there."""
    out = fn(x)
    g, = sg.grad([out[:, :, r, c].sum()], [x])
    return np.abs(g.numpy()).sum(axis=(0, 1)) > 0


def _model(**kw):
    args = dict(num_codes=5, channels=8, num_layers=4, kernel_size=3, first_kernel=3)
    args.update(kw)
    return PixelCNN(**args).to("float64")


@pytest.mark.parametrize("kw", [{}, {"first_kernel": 5, "num_layers": 3},
                                {"num_classes": 3}, {"cond_channels": 2}])
def test_causality_exact_by_gradients(kw):
    """For every position i (raster order) of a 5 x 5 map: d logits_i / d x_j = 0 exactly for
    j >= i (the network never sees the present or the future), and the last hidden layer
    depends on every j < i (the vertical and horizontal stacks leave no blind spot)."""
    sg.manual_seed(0)
    model = _model(**kw)
    h = w = 5
    rng = np.random.default_rng(0)
    x = sg.tensor(rng.standard_normal((2, 8, h, w)), requires_grad=True)
    y = np.array([0, 2]) if "num_classes" in kw else None
    cond = sg.tensor(rng.standard_normal((2, 2, h, w))) if "cond_channels" in kw else None
    order = np.arange(h * w).reshape(h, w)
    for i in range(h * w):
        r, c = divmod(i, w)
        logits_dep = _dependence(lambda t: model.logits_from_embedding(t, y, cond), x, r, c)
        assert not logits_dep[order >= i].any(), f"logits at {(r, c)} see position >= {i}"
        hidden_dep = _dependence(lambda t: model.hidden(t, y, cond), x, r, c)
        assert not hidden_dep[order >= i].any()
        assert hidden_dep[order < i].all(), f"blind spot for position {(r, c)}:\n{hidden_dep}"


def test_single_layer_receptive_field():
    """One type-A layer with k = 3: row above (3 columns, through the vertical stack shifted
    down) and the pixel to the left (horizontal stack), nothing else."""
    model = _model(num_layers=1)
    x = sg.tensor(np.random.default_rng(1).standard_normal((1, 8, 5, 5)), requires_grad=True)
    dep = _dependence(model.hidden, x, 2, 2)
    expected = np.zeros((5, 5), bool)
    expected[0:2, 1:4] = True       # vertical stack: rows r-2..r-1 (k//2 + 1 rows, shifted)
    expected[2, 1] = True           # horizontal stack, type A: the pixel to the left
    np.testing.assert_array_equal(dep, expected)


def test_changing_a_later_code_leaves_earlier_logits_unchanged():
    sg.manual_seed(1)
    model = PixelCNN(6, channels=8, num_layers=3).eval()
    rng = np.random.default_rng(2)
    codes = rng.integers(0, 6, (3, 4, 4))
    base = model(codes).numpy()
    for i in range(16):
        r, c = divmod(i, 4)
        changed = codes.copy()
        changed[:, r, c] = (changed[:, r, c] + 1 + rng.integers(0, 5, 3)) % 6
        new = model(changed).numpy().reshape(3, 6, 16)
        np.testing.assert_array_equal(new[:, :, :i + 1], base.reshape(3, 6, 16)[:, :, :i + 1])
        if i < 15:
            assert not np.array_equal(new[:, :, i + 1:], base.reshape(3, 6, 16)[:, :, i + 1:])


def test_greedy_sample_is_a_fixed_point_of_the_network():
    """With temperature 0 the sampler picks argmax_k p(c_i = k | c_<i) at each step. Since the
    logits at i ignore positions >= i, re-running the network on the finished map gives the
    same argmax everywhere: the sampler used exactly the conditionals the model defines."""
    sg.manual_seed(3)
    model = PixelCNN(4, channels=8, num_layers=3, num_classes=2)
    y = np.array([0, 1, 1])
    codes = model.sample(3, (4, 5), y=y, temperature=0)
    assert codes.shape == (3, 4, 5) and codes.dtype == np.int64
    model.eval()
    np.testing.assert_array_equal(model(codes, y).numpy().argmax(axis=1), codes.numpy())


def test_sampling_is_reproducible_and_in_range():
    model = PixelCNN(7, channels=8, num_layers=2)
    sg.manual_seed(5)
    a = model.sample(4, (3, 3)).numpy()
    sg.manual_seed(5)
    b = model.sample(4, (3, 3)).numpy()
    np.testing.assert_array_equal(a, b)
    assert a.min() >= 0 and a.max() < 7
    assert model.training  # sample() restores the mode it found


def test_categorical_draw_frequencies():
    """Inverse-CDF draws from softmax(logits / T) have the right frequencies."""
    gen = np.random.default_rng(0)
    logits = np.log(np.array([[0.5, 0.3, 0.2, 0.0 + 1e-300]]))
    k = _draw(np, gen, np.repeat(logits, 40000, axis=0), 1.0)
    freq = np.bincount(k, minlength=4) / len(k)
    np.testing.assert_allclose(freq, [0.5, 0.3, 0.2, 0.0], atol=0.01)
    # temperature 0.5 squares and renormalises the probabilities
    k = _draw(np, gen, np.repeat(logits, 40000, axis=0), 0.5)
    p = np.array([0.25, 0.09, 0.04, 0.0]) / 0.38
    np.testing.assert_allclose(np.bincount(k, minlength=4) / len(k), p, atol=0.01)


@pytest.mark.parametrize("kw", [{}, {"num_classes": 3}, {"cond_channels": 2}])
def test_loss_gradcheck(kw):
    sg.manual_seed(6)
    model = PixelCNN(3, channels=4, num_layers=2, kernel_size=3, first_kernel=3, **kw)
    model.to("float64")
    rng = np.random.default_rng(7)
    codes = rng.integers(0, 3, (2, 3, 3))
    y = np.array([1, 2]) if "num_classes" in kw else None
    cond = sg.tensor(rng.standard_normal((2, 2, 3, 3))) if "cond_channels" in kw else None
    params = list(model.parameters())
    gradcheck(lambda *ps: model.loss(codes, y, cond), params, mode="projection",
              n_projections=6, atol=1e-7, rtol=1e-5)
    # the loss is the mean negative log-likelihood in nats: -log softmax(logits)[code]
    with sg.no_grad():
        logits = model(codes, y, cond).numpy()
    lse = np.log(np.exp(logits).sum(axis=1))
    picked = np.take_along_axis(logits, codes[:, None], axis=1)[:, 0]
    assert model.loss(codes, y, cond).item() == pytest.approx((lse - picked).mean(), rel=1e-10)


def test_conditioning_is_required_and_used():
    sg.manual_seed(8)
    model = PixelCNN(4, channels=8, num_layers=2, num_classes=3).eval()
    codes = np.zeros((2, 3, 3), np.int64)
    with pytest.raises(ValueError, match="class-conditional"):
        model(codes)
    a = model(codes, np.array([0, 0])).numpy()
    b = model(codes, np.array([0, 2])).numpy()
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.allclose(a[1], b[1])


def test_learns_a_deterministic_pattern():
    """A checkerboard of two codes: after training, the cross-entropy is far below log 2 (only
    the first code is uncertain) and greedy sampling continues the pattern."""
    sg.manual_seed(9)
    board = (np.indices((4, 4)).sum(0) % 2)
    codes = np.stack([board, 1 - board] * 4)                 # both phases, 8 maps
    model = PixelCNN(3, channels=16, num_layers=2, first_kernel=3)
    opt = sg.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        loss = PixelCNNTrainStep(model, opt)(codes)["loss"]
    assert loss < 0.15
    s = model.sample(2, (4, 4), temperature=0).numpy()
    for m in s:
        assert np.array_equal(m, board) or np.array_equal(m, 1 - board)


def test_dropout_keeps_causality_and_is_off_in_eval():
    """Dropout masks each feature of each position on its own, so in training the logits at i
    still see no position >= i; in evaluation it is the identity (the same logits as the same
    weights with p = 0), and in training two passes differ."""
    sg.manual_seed(10)
    model = _model(dropout=0.5)
    assert all((layer.dropout is None) == (not layer.residual) for layer in model.layers)
    x = sg.tensor(np.random.default_rng(11).standard_normal((2, 8, 4, 4)), requires_grad=True)
    order = np.arange(16).reshape(4, 4)
    for i in range(16):
        dep = _dependence(model.logits_from_embedding, x, *divmod(i, 4))
        assert not dep[order >= i].any(), f"position {divmod(i, 4)} sees position >= {i}"
    a, b = model.logits_from_embedding(x).numpy(), model.logits_from_embedding(x).numpy()
    assert not np.allclose(a, b)
    plain = _model()
    plain.load_state_dict(model.state_dict())
    model.eval(), plain.eval()
    np.testing.assert_array_equal(model.logits_from_embedding(x).numpy(),
                                  plain.logits_from_embedding(x).numpy())
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="dropout must be in"):
            PixelCNN(5, channels=8, num_layers=1, dropout=bad)
