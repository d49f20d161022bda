"""The loss primitives against their definitions written out in NumPy."""
import numpy as np
import pytest

import scratchgen as sg
import scratchgen.functional as F


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss_value_and_gradient_match_the_definition(reduction):
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((2, 5, 3))
    xs, ts = sg.tensor(x, requires_grad=True), sg.tensor(t, requires_grad=True)
    loss = F.mse_loss(xs, ts, reduction=reduction)
    d = x - t
    expected = {"mean": (d * d).mean(), "sum": (d * d).sum(), "none": d * d}[reduction]
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-12)
    loss.sum().backward()
    scale = 2.0 / d.size if reduction == "mean" else 2.0
    np.testing.assert_allclose(xs.grad.numpy(), scale * d, rtol=1e-12)
    np.testing.assert_allclose(ts.grad.numpy(), -scale * d, rtol=1e-12)


def test_mse_loss_keeps_float32_and_rejects_bad_input():
    x = sg.tensor(np.ones((4, 2), np.float32), requires_grad=True)
    assert F.mse_loss(x, np.zeros((4, 2), np.float32)).dtype == np.float32
    with pytest.raises(ValueError, match=r"\(4, 2\).*\(4, 3\)"):
        F.mse_loss(x, np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match="reduction"):
        F.mse_loss(x, np.zeros((4, 2), np.float32), reduction="avg")


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_binary_cross_entropy_is_torchs(reduction):
    """l = -w (t log p + (1 - t) log(1 - p)), each log clamped at -100; gradient
    w (p - t) / max(p (1 - p), 1e-12) in p (PyTorch's), and the clamped log-odds -w logit(p)
    in t."""
    rng = np.random.default_rng(0)
    p = np.concatenate([rng.uniform(0.01, 0.99, 6), [0.0, 1.0, 0.0, 1.0]])
    t = np.concatenate([rng.uniform(0, 1, 6), [1.0, 0.0, 0.0, 1.0]])
    w = rng.uniform(0.5, 2.0, p.shape)
    ps, ts = sg.tensor(p, requires_grad=True), sg.tensor(t, requires_grad=True)
    loss = F.binary_cross_entropy(ps, ts, weight=w, reduction=reduction)
    with np.errstate(divide="ignore"):
        log_p, log_q = np.maximum(np.log(p), -100), np.maximum(np.log(1 - p), -100)
    elementwise = -w * (t * log_p + (1 - t) * log_q)
    expected = {"mean": elementwise.mean(), "sum": elementwise.sum(), "none": elementwise}
    np.testing.assert_allclose(loss.numpy(), expected[reduction], rtol=1e-12)
    assert np.isclose(elementwise[6], 100 * w[6]) and elementwise[8] == 0.0
    loss.sum().backward()
    c = 1.0 / p.size if reduction == "mean" else 1.0
    np.testing.assert_allclose(ps.grad.numpy(), c * w * (p - t) / np.maximum(p * (1 - p), 1e-12),
                               rtol=1e-12)
    np.testing.assert_allclose(ts.grad.numpy(), c * w * (log_q - log_p), rtol=1e-12)


def test_binary_cross_entropy_agrees_with_the_logits_form_and_checks_arguments():
    rng = np.random.default_rng(1)
    x, t = rng.standard_normal((3, 4)), rng.uniform(0, 1, (3, 4))
    probs = sg.tensor(1 / (1 + np.exp(-x)))
    np.testing.assert_allclose(F.binary_cross_entropy(probs, t).item(),
                               F.binary_cross_entropy_with_logits(sg.tensor(x), t).item(),
                               rtol=1e-12)
    with pytest.raises(ValueError, match="probabilities"):
        F.binary_cross_entropy(sg.tensor(x), t)
    with pytest.raises(ValueError, match="same shape"):
        F.binary_cross_entropy(probs, t[:2])
    assert F.binary_cross_entropy(sg.tensor(np.float32([0.5])), np.float32([1])).dtype == np.float32
