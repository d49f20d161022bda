"""Normalisation over a set of axes S, the core of batch, layer, instance and group norm:

    x_hat = (x - mean_S(x)) / sqrt(var_S(x) + eps),   var_S(x) = mean_S((x - mean_S(x))^2)

(the biased variance). The layers (``scratchgen.nn.functional_norm``) choose S and add the
affine map gamma x_hat + beta.
"""
from __future__ import annotations

from typing import Any

from scratchgen.kernels.reduce import sum_axes

from scratchgen import backend
from scratchgen.autograd import Function, Tensor
from scratchgen.functional.elementwise import sqrt
from scratchgen.functional.reduction import mean
from scratchgen.functional.registry import register

__all__ = ["normalize_over"]


class Normalize(Function):
    """x_hat = (x - m) * r over the axes S, given the statistics m = mean_S(x) and
    r = 1 / sqrt(var_S(x) + eps) (biased variance), as one node.

    Its derivative, from dm/dx_j = 1/N and d(1/r)/dx_j = (x_j - m) r / N (N = |S|):

        dL/dx = (g - mean_S(g) - x_hat * mean_S(g * x_hat)) * r.

    One node instead of the seven ops of the composition saves most of the passes over the
    activations, in both directions. ``backward`` writes the same formula with ops -- x_hat as
    this node's own output, r recomputed from x -- so it is differentiable again.
    """

    def __init__(self, axes: tuple[int, ...], eps: float, mean: Any, inv_std: Any) -> None:
        self.axes, self.eps, self.mean, self.inv_std = axes, eps, mean, inv_std

    def forward(self, x):
        x_hat = x - self.mean
        x_hat *= self.inv_std
        return x_hat

    def backward_arrays(self, g):
        x_hat, a = self._outputs[0], self.axes
        gx = g - _mean_axes(g, a)
        gx -= x_hat * _mean_axes(g * x_hat, a)
        gx *= self.inv_std
        return gx

    def backward(self, g):
        x, a = self.inputs[0], self.axes
        x_hat = self.output(0)
        d = x - mean(x, a, keepdims=True)
        inv_std = 1.0 / sqrt(mean(d * d, a, keepdims=True) + self.eps)
        return (g - mean(g, a, keepdims=True)
                - x_hat * mean(g * x_hat, a, keepdims=True)) * inv_std


@register()
def normalize_over(x: Tensor, axes: tuple[int, ...], eps: float) -> tuple[Tensor, Tensor, Tensor]:
    """x_hat = (x - m) / sqrt(v + eps) over ``axes``, with m = mean_S(x) and the biased
    v = mean_S((x - m)^2), returned with m and v (kept axes; constants, not differentiated:
    they feed the running statistics)."""
    xp = backend.get_array_module(x.data)
    mean = _mean_axes(x.data, axes)
    d = x.data - mean
    var = _mean_axes(d * d, axes)  # biased, two passes, as x.var
    inv_std = (1.0 / xp.sqrt(var + eps)).astype(x.dtype, copy=False)
    y = Normalize.apply(x, axes=axes, eps=eps, mean=mean, inv_std=inv_std)
    return y, Tensor(mean), Tensor(var)


def _mean_axes(a: Any, axes: tuple[int, ...]) -> Any:
    """``a.mean(axis=axes, keepdims=True)`` for a float array, by ``kernels.reduce.sum_axes``."""
    n = 1
    for ax in axes:
        n *= a.shape[ax]
    if n == 0:  # NaN, as NumPy's
        return a.mean(axis=axes, keepdims=True)
    return sum_axes(a, axes, keepdims=True) * a.dtype.type(1.0 / n)
