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
