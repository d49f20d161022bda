"""Piecewise elementwise ops: abs, ReLU, leaky ReLU, ELU, clip, maximum, minimum, where.

Each backward is the derivative written with differentiable ops, so that it can be
differentiated again. Where a derivative is piecewise its 0/1 mask is a constant: the second
derivative of a piecewise-linear function is zero away from its kinks (where the gradient
checks keep their points away from).
"""
from __future__ import annotations

from typing import Any

from scratchgen.kernels import activation as _activation

from scratchgen import backend
from scratchgen.autograd import Function, Tensor
from scratchgen.functional.elementwise import binary_operands
from scratchgen.functional.registry import register
from scratchgen.functional.shape import sum_to

__all__ = ["abs", "relu", "leaky_relu", "elu", "clip", "maximum", "minimum", "where"]


# ---- piecewise functions ---------------------------------------------------------------------

class Abs(Function):
    def forward(self, x):
        xp = backend.get_array_module(x)
        self.sign = xp.sign(x)
        return xp.abs(x)

    def backward(self, g):
        return g * Tensor(self.sign)


class Relu(Function):
    def forward(self, x):
        xp = backend.get_array_module(x)
        return xp.maximum(x, 0)

    def backward(self, g):
        # the derivative is 1 where the output is positive (a constant 0/1 mask)
        return g * Tensor(self._outputs[0] > 0)

    def backward_arrays(self, g):
        return _activation.relu_backward(self._outputs[0], g)


class LeakyRelu(Function):
    def __init__(self, slope: float = 0.01) -> None:
        self.slope = slope

    def forward(self, x):
        return _activation.leaky_relu_forward(x, self.slope)

    def backward(self, g):
        x = self.inputs[0].data  # the derivative, a constant
        return g * Tensor(_activation.leaky_relu_derivative(x, self.slope, g.dtype))

    def backward_arrays(self, g):
        return _activation.leaky_relu_backward(self.inputs[0].data, g, self.slope)


class Elu(Function):
    """elu(x) = x for x > 0, alpha (e^x - 1) otherwise; derivative there is elu(x) + alpha."""

    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = alpha

    def forward(self, x):
        xp = backend.get_array_module(x)
        self.pos = (x > 0).astype(x.dtype)
        return xp.where(x > 0, x, self.alpha * xp.expm1(xp.minimum(x, 0))).astype(x.dtype,
                                                                                   copy=False)

    def backward(self, g):
        pos = Tensor(self.pos)
        neg_part = (self.output() + self.alpha) * (1.0 - pos)
        return g * (pos + neg_part)


class Clip(Function):
    def __init__(self, lo: float | None, hi: float | None) -> None:
        self.lo, self.hi = lo, hi

    def forward(self, x):
        xp = backend.get_array_module(x)
        inside = xp.ones(x.shape, dtype=bool)
        if self.lo is not None:
            inside &= x >= self.lo
        if self.hi is not None:
            inside &= x <= self.hi
        self.inside = inside.astype(x.dtype)
        return xp.clip(x, self.lo, self.hi)

    def backward(self, g):
        return g * Tensor(self.inside)


class Maximum(Function):
    """max(a, b) elementwise; at a tie the gradient goes to ``a``."""

    def forward(self, a, b):
        xp = backend.get_array_module(a)
        self.a_wins = (a >= b)
        return xp.maximum(a, b)

    def backward(self, g):
        a, b = self.inputs
        m = self.a_wins.astype(g.dtype)
        return (sum_to(g * Tensor(m), a.shape) if self.needs_input_grad[0] else None,
                sum_to(g * Tensor(1.0 - m), b.shape) if self.needs_input_grad[1] else None)


class Minimum(Function):
    """min(a, b) elementwise; at a tie the gradient goes to ``a``."""

    def forward(self, a, b):
        xp = backend.get_array_module(a)
        self.a_wins = (a <= b)
        return xp.minimum(a, b)

    backward = Maximum.backward


class Where(Function):
    def __init__(self, cond: Any) -> None:
        self.cond = cond

    def forward(self, a, b):
        return backend.get_array_module(a).where(self.cond, a, b)

    def backward(self, g):
        a, b = self.inputs
        m = self.cond.astype(g.dtype)
        return (sum_to(g * Tensor(m), a.shape) if self.needs_input_grad[0] else None,
                sum_to(g * Tensor(1.0 - m), b.shape) if self.needs_input_grad[1] else None)


@register()
def abs(x: Tensor) -> Tensor:
    """|x|; derivative sign(x) (0 at 0)."""
    return Abs.apply(x)


@register()
def relu(x: Tensor) -> Tensor:
    """max(x, 0); derivative 1 for x > 0, 0 otherwise (0 at x = 0, as PyTorch)."""
    return Relu.apply(x)


@register()
def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    """x for x > 0, negative_slope * x otherwise."""
    return LeakyRelu.apply(x, slope=negative_slope)


@register()
def elu(x: Tensor, alpha: float = 1.0) -> Tensor:
    """x for x > 0, alpha (e^x - 1) otherwise."""
    return Elu.apply(x, alpha=alpha)


@register()
def clip(x: Tensor, min: float | None = None, max: float | None = None) -> Tensor:
    """Clamp into [min, max]; the gradient is 1 inside (bounds included) and 0 outside."""
    if min is None and max is None:
        raise ValueError("clip needs at least one of min and max")
    return Clip.apply(x, lo=min, hi=max)


@register()
def maximum(a: Any, b: Any) -> Tensor:
    """Elementwise max(a, b), broadcasting; a tie sends the gradient to ``a``."""
    a, b = binary_operands(a, b)
    return Maximum.apply(a, b)


@register()
def minimum(a: Any, b: Any) -> Tensor:
    """Elementwise min(a, b), broadcasting; a tie sends the gradient to ``a``."""
    a, b = binary_operands(a, b)
    return Minimum.apply(a, b)


@register()
def where(cond: Any, a: Any, b: Any) -> Tensor:
    """``a`` where ``cond`` is true, ``b`` elsewhere; ``cond`` is a boolean array or tensor."""
    a, b = binary_operands(a, b)
    c = cond.data if isinstance(cond, Tensor) else cond
    xp = backend.get_array_module(a.data)
    c = xp.asarray(c, dtype=bool)
    return Where.apply(a, b, cond=c)
