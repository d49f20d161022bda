"""The public gradient checker must catch wrong gradients, not only pass right ones."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

import scratchgen as sg
import scratchgen.functional as F
from scratchgen.autograd import Function, Tensor
from scratchgen.testing import (GradcheckError, NondifferentiablePointError, gradcheck,
                                gradgradcheck)
from scratchgen.testing import strategies as sgst


class WrongCube(Function):
    """x^3 with the derivative 3x^2 off by 1%."""

    def forward(self, x):
        return x ** 3

    def backward(self, g):
        (x,) = self.inputs
        return g * 3.03 * x * x


class ConstantExpBackward(Function):
    """e^x whose backward treats e^x as a constant: first derivative right, second wrong."""

    def forward(self, x):
        return np.exp(x)

    def backward(self, g):
        return g * Tensor(self._outputs[0])


def x64(shape, seed=0):
    return sg.tensor(np.random.default_rng(seed).uniform(0.5, 1.5, shape), requires_grad=True)


def test_catches_wrong_gradient_full():
    with pytest.raises(GradcheckError, match="mismatch"):
        gradcheck(WrongCube.apply, [x64((2, 3))])


def test_catches_wrong_gradient_by_projection():
    with pytest.raises(GradcheckError, match="projection"):
        gradcheck(WrongCube.apply, [x64((40, 40))], mode="projection")


def test_auto_mode_uses_projection_for_large_inputs():
    x = x64((30, 30))
    assert gradcheck(lambda t: F.tanh(t) * 2.0, [x])  # 900 x 900 Jacobian: projections


def test_catches_wrong_second_derivative():
    x = x64((3,))
    assert gradcheck(ConstantExpBackward.apply, [x])
    with pytest.raises(GradcheckError):
        gradgradcheck(ConstantExpBackward.apply, [x])


def test_refuses_float32_and_says_why():
    x = sg.tensor(np.ones(3, np.float32), requires_grad=True)
    with pytest.raises(TypeError, match="float64"):
        gradcheck(F.exp, [x])


def test_detects_kinks_instead_of_failing_at_random():
    x = sg.tensor(np.array([0.0, 0.5]), requires_grad=True)
    with pytest.raises(NondifferentiablePointError, match="non-differentiable"):
        gradcheck(F.relu, [x])
    assert gradcheck(F.relu, [x], on_kink="skip")
    # At a tie, max splits the gradient equally, which is exactly the central difference
    # (the mean of the one-sided derivatives 1 and 0): the check passes instead of failing.
    y = sg.tensor(np.array([1.0, 1.0, 0.2]), requires_grad=True)
    assert gradcheck(lambda t: F.max(t), [y])


def test_inputs_are_left_unchanged():
    a = np.random.default_rng(0).standard_normal((3, 3))
    x = sg.tensor(a.copy(), requires_grad=True)
    gradcheck(F.tanh, [x])
    np.testing.assert_array_equal(x.numpy(), a)


@settings(max_examples=20, deadline=None)
@given(sgst.arrays(sgst.shapes(1, 3), avoid=(0.0,), margin=0.05))
def test_strategies_keep_values_off_kinks(a):
    assert np.all(np.abs(a) >= 0.05)
    gradcheck(F.relu, [sg.tensor(a, requires_grad=True)])


@settings(max_examples=20, deadline=None)
@given(sgst.distinct_arrays(sgst.shapes(1, 2, 2, 5)))
def test_distinct_arrays_have_no_ties(a):
    flat = np.sort(a.ravel())
    assert np.all(np.diff(flat) > 0)
    gradcheck(lambda t: F.max(t), [sg.tensor(a, requires_grad=True)])
