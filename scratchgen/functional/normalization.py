"""Normalisation over a set of axes S, the core of batch, layer, instance and group norm:

    x_hat = (x - mean_S(x)) / sqrt(var_S(x) + eps),   var_S(x) = mean_S((x - mean_S(x))^2)

(the biased variance). The layers (``scratchgen.nn.functional_norm``) choose S and add the
affine map gamma x_hat + beta: batch and instance norm, whose gamma and beta are per channel,
take both steps as one op (``normalize_affine``), the others compose ``normalize_over`` with
ops.
"""
from __future__ import annotations

from scratchgen.kernels.norm import normalize_affine_backward, normalize_affine_forward

from scratchgen.autograd import Function, Tensor
from scratchgen.functional.elementwise import sqrt
from scratchgen.functional.reduction import mean
from scratchgen.functional.reduction import sum as sum_over
from scratchgen.functional.shape import reshape
from scratchgen.functional.registry import register

__all__ = ["normalize_over", "normalize_affine"]


class Normalize(Function):
    """x_hat = (x - m) * r over the axes S, with the statistics m = mean_S(x) and
    r = 1 / sqrt(var_S(x) + eps) (biased variance), as one node.

    Its derivative, from dm/dx_j = 1/N and d(1/r)/dx_j = (x_j - m) r / N (N = |S|):

        dL/dx = (g - mean_S(g) - x_hat * mean_S(g * x_hat)) * r.

    One node instead of the seven ops of the composition saves most of the passes over the
    activations, in both directions; the forward and ``backward_arrays`` are ``kernels.norm``'s
    (gamma = 1, beta = 0). ``backward`` writes the same formula with ops -- x_hat as this
    node's own output, r recomputed from x -- so it is differentiable again.
    """

    def __init__(self, axes: tuple[int, ...], eps: float, stats: dict) -> None:
        self.axes, self.eps, self.stats = axes, eps, stats

    def forward(self, x):
        x_hat, self.centred, mean, var, self.inv_std = normalize_affine_forward(
            x, None, None, self.axes, self.eps)
        self.stats.update(mean=mean, var=var)  # for the caller, not differentiated
        return x_hat

    def backward_arrays(self, g):
        return normalize_affine_backward(g, self.centred, None, self.inv_std, self.axes,
                                         (True, False, False))[0]

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
    stats: dict = {}
    y = Normalize.apply(x, axes=axes, eps=eps, stats=stats)
    return y, Tensor(stats["mean"]), Tensor(stats["var"])


class NormalizeAffine(Function):
    """y = gamma x_hat + beta, x_hat normalised over the axes S (never the channel axis 1),
    with per-channel (C,) gamma and beta, as one node. With k = gamma r (r = 1/sqrt(v + eps)):

        dL/dx     = k (g - mean_S(g) - x_hat mean_S(g x_hat))
        dL/dgamma = sum over all axes but C of g x_hat,   dL/dbeta = sum of g over them.

    The forward and ``backward_arrays`` are ``kernels.norm``'s (fewer passes, on the kernel
    threads); ``backward`` writes the same formulas with ops, recomputing x_hat from x, so that
    it is differentiable again.
    """

    def __init__(self, axes: tuple[int, ...], eps: float, stats: dict) -> None:
        self.axes, self.eps, self.stats = axes, eps, stats

    def forward(self, x, gamma, beta):
        y, self.centred, mean, var, self.inv_std = normalize_affine_forward(
            x, gamma, beta, self.axes, self.eps)
        self.stats.update(mean=mean, var=var)  # for the caller, not differentiated
        return y

    def backward_arrays(self, g):
        gamma = self.inputs[1].data
        return normalize_affine_backward(g, self.centred, gamma, self.inv_std, self.axes,
                                         self.needs_input_grad)

    def backward(self, g):
        x, gamma, _ = self.inputs
        a, channel = self.axes, (1, -1) + (1,) * (x.ndim - 2)
        not_channel = tuple(i for i in range(x.ndim) if i != 1)
        d = x - mean(x, a, keepdims=True)
        inv_std = 1.0 / sqrt(mean(d * d, a, keepdims=True) + self.eps)
        x_hat = d * inv_std
        gx_hat = g * reshape(gamma, channel)
        gx = (gx_hat - mean(gx_hat, a, keepdims=True)
              - x_hat * mean(gx_hat * x_hat, a, keepdims=True)) * inv_std
        return gx, sum_over(g * x_hat, not_channel), sum_over(g, not_channel)


@register()
def normalize_affine(x: Tensor, gamma: Tensor, beta: Tensor, axes: tuple[int, ...],
                     eps: float) -> tuple[Tensor, Tensor, Tensor]:
    """gamma x_hat + beta with x_hat = (x - m) / sqrt(v + eps) over ``axes`` of an (N, C, ...)
    input (``axes`` without the channel axis 1) and (C,) ``gamma`` and ``beta``; returned with
    m and v (kept axes; constants, for the running statistics), as ``normalize_over``."""
    if any(not -x.ndim <= a < x.ndim for a in axes):
        raise ValueError(f"normalize_affine: axes {tuple(axes)} out of range for an input of "
                         f"shape {x.shape}")
    axes = tuple(a % x.ndim for a in axes)
    if x.ndim < 2 or 1 in axes or gamma.shape != (x.shape[1],) or beta.shape != (x.shape[1],):
        channels = x.shape[1] if x.ndim >= 2 else "C"
        raise ValueError(f"normalize_affine: an (N, C, ...) input, gamma and beta of shape "
                         f"({channels},) and axes without the channel axis 1; got input "
                         f"{x.shape}, gamma {gamma.shape}, beta {beta.shape}, axes {axes}")
    stats: dict = {}
    y = NormalizeAffine.apply(x, gamma, beta, axes=axes, eps=eps, stats=stats)
    return y, Tensor(stats["mean"]), Tensor(stats["var"])
