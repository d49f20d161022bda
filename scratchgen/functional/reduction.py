"""Reductions along axes: sum, mean, var, max, min, logsumexp, softmax, log_softmax."""
from __future__ import annotations

import builtins
from typing import Any

from scratchgen.kernels.reduce import sum_axes

from scratchgen import backend
from scratchgen.autograd import Function, Tensor
from scratchgen.functional.elementwise import exp
from scratchgen.functional.registry import register
from scratchgen.functional.shape import broadcast_to, reshape

__all__ = ["sum", "mean", "var", "max", "min", "logsumexp", "softmax", "log_softmax"]


def _norm_axes(axis: Any, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    for a in axes:
        if not -builtins.max(ndim, 1) <= a < builtins.max(ndim, 1):
            raise ValueError(f"axis {a} is out of range for a tensor with {ndim} dimensions")
    return tuple(sorted(a % ndim for a in axes)) if ndim else ()


def _keepdims_shape(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def _expand(g: Tensor, in_shape: tuple[int, ...], axes: tuple[int, ...]) -> Tensor:
    """Broadcast a reduced gradient back over the reduced axes."""
    if g.ndim == 0:
        return broadcast_to(g, in_shape)
    return broadcast_to(reshape(g, _keepdims_shape(in_shape, axes)), in_shape)


def _expand_array(g, in_shape: tuple[int, ...], axes: tuple[int, ...]):
    """Array version of ``_expand``: a read-only broadcast view of g over the reduced axes."""
    return backend.broadcast_view(g.reshape(_keepdims_shape(in_shape, axes)), in_shape)


class Sum(Function):
    def __init__(self, axes: tuple[int, ...], keepdims: bool) -> None:
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        return sum_axes(x, self.axes, self.keepdims)

    def backward(self, g):
        return _expand(g, self.inputs[0].shape, self.axes)

    def backward_arrays(self, g):
        return _expand_array(g, self.inputs[0].shape, self.axes)


class Mean(Function):
    def __init__(self, axes: tuple[int, ...], keepdims: bool) -> None:
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        n = 1
        for a in self.axes:
            n *= x.shape[a]
        self.n = n
        if x.dtype.kind != "f" or n == 0:  # integers (no gradient), or empty axes (NaN)
            return x.mean(axis=self.axes, keepdims=self.keepdims)
        # sum times 1/n: x.mean() without its Python-level overhead (and, by sum_axes, fast for
        # the batch-and-pixels axes of a normalisation)
        self.scale = x.dtype.type(1.0 / n)
        return sum_axes(x, self.axes, self.keepdims) * self.scale

    def backward(self, g):
        return _expand(g * (1.0 / self.n), self.inputs[0].shape, self.axes)

    def backward_arrays(self, g):
        if self.n == 0:  # nothing to spread the gradient over
            return _expand_array(g, self.inputs[0].shape, self.axes)
        return _expand_array(g * self.scale, self.inputs[0].shape, self.axes)


class Extremum(Function):
    """max or min along axes. At ties the gradient is split equally among the tied elements
    (as ``torch.amax``), which is the average of the one-hot subgradients."""

    def __init__(self, axes: tuple[int, ...], keepdims: bool, largest: bool) -> None:
        self.axes, self.keepdims, self.largest = axes, keepdims, largest

    def forward(self, x):
        y = (x.max if self.largest else x.min)(axis=self.axes, keepdims=True)
        hit = (x == y).astype(x.dtype)
        self.share = hit / hit.sum(axis=self.axes, keepdims=True)
        return y if self.keepdims else y.reshape(tuple(
            n for i, n in enumerate(x.shape) if i not in self.axes))

    def backward(self, g):
        return _expand(g, self.inputs[0].shape, self.axes) * Tensor(self.share)


class LogSumExp(Function):
    """log sum_i e^{x_i}, computed as m + log sum_i e^{x_i - m} with m = max x (no overflow);
    its derivative is softmax(x) = e^{x - logsumexp(x)}."""

    def __init__(self, axes: tuple[int, ...], keepdims: bool) -> None:
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        xp = backend.get_array_module(x)
        m = x.max(axis=self.axes, keepdims=True)
        m = xp.where(xp.isfinite(m), m, 0)  # all -inf rows: avoid inf - inf
        y = m + xp.log(xp.exp(x - m).sum(axis=self.axes, keepdims=True))
        return y if self.keepdims else y.reshape(tuple(
            n for i, n in enumerate(x.shape) if i not in self.axes))

    def backward(self, g):
        x = self.inputs[0]
        y = _expand(self.output(), x.shape, self.axes)
        return _expand(g, x.shape, self.axes) * exp(x - y)


class Softmax(Function):
    """y = e^{x - max x} / sum e^{x - max x}; backward y * (g - sum(g * y))."""

    def __init__(self, axis: int) -> None:
        self.axis = axis

    def forward(self, x):
        xp = backend.get_array_module(x)
        e = xp.exp(x - x.max(axis=self.axis, keepdims=True))
        return e / e.sum(axis=self.axis, keepdims=True)

    def backward(self, g):
        y = self.output()
        return y * (g - sum(g * y, self.axis, keepdims=True))


class LogSoftmax(Function):
    """y = x - logsumexp(x); backward g - softmax(x) * sum(g)."""

    def __init__(self, axis: int) -> None:
        self.axis = axis

    def forward(self, x):
        xp = backend.get_array_module(x)
        z = x - x.max(axis=self.axis, keepdims=True)
        return z - xp.log(xp.exp(z).sum(axis=self.axis, keepdims=True))

    def backward(self, g):
        return g - exp(self.output()) * sum(g, self.axis, keepdims=True)


@register()
def sum(x: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Sum over ``axis`` (an int, a tuple, or None for all)."""
    return Sum.apply(x, axes=_norm_axes(axis, x.ndim), keepdims=keepdims)


@register()
def mean(x: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Arithmetic mean over ``axis``."""
    return Mean.apply(x, axes=_norm_axes(axis, x.ndim), keepdims=keepdims)


@register()
def var(x: Tensor, axis: Any = None, keepdims: bool = False, ddof: int = 0) -> Tensor:
    """Variance sum (x - mean)^2 / (n - ddof); ddof=0 is the biased (population) variance."""
    axes = _norm_axes(axis, x.ndim)
    n = 1
    for a in axes:
        n *= x.shape[a]
    if n - ddof <= 0:
        raise ValueError(f"var over {n} elements with ddof={ddof} divides by zero")
    d = x - mean(x, axes, keepdims=True)
    return sum(d * d, axes, keepdims) * (1.0 / (n - ddof))


@register()
def max(x: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Largest value over ``axis``; tied maxima share the gradient equally."""
    return Extremum.apply(x, axes=_norm_axes(axis, x.ndim), keepdims=keepdims, largest=True)


@register()
def min(x: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Smallest value over ``axis``; tied minima share the gradient equally."""
    return Extremum.apply(x, axes=_norm_axes(axis, x.ndim), keepdims=keepdims, largest=False)


@register()
def logsumexp(x: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
    """log sum exp(x) over ``axis``, without overflow."""
    return LogSumExp.apply(x, axes=_norm_axes(axis, x.ndim), keepdims=keepdims)


@register()
def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """e^{x_i} / sum_j e^{x_j} along ``axis``."""
    return Softmax.apply(x, axis=_norm_axes(axis, x.ndim)[0])


@register()
def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """x_i - logsumexp(x) along ``axis``."""
    return LogSoftmax.apply(x, axis=_norm_axes(axis, x.ndim)[0])
