"""Normalisation layers as compositions of differentiable ops (mean, multiply, sqrt, divide).

Built from ops whose backward is itself differentiable, each of these is twice
differentiable: a gradient penalty (WGAN-GP, R1) can be taken through a critic that normalises.

All of them compute, over some set of axes S,

    y = (x - mean_S(x)) / sqrt(var_S(x) + eps) * gamma + beta,

with the biased variance var_S(x) = mean_S((x - mean_S(x))^2); they differ in S:

    batch norm     S = (N, H, W) per channel           (Ioffe & Szegedy, 2015)
    layer norm     S = the trailing normalized_shape   (Ba et al., 2016)
    instance norm  S = (H, W) per sample and channel   (Ulyanov et al., 2016)
    group norm     S = (C/G, H, W) per sample and group (Wu & He, 2018)
"""
from __future__ import annotations

from typing import Any, Sequence

from scratchgen.kernels.reduce import sum_axes

from scratchgen import backend
import scratchgen.functional as F
from scratchgen.autograd import Function, Tensor

__all__ = ["batch_norm", "layer_norm", "group_norm", "instance_norm", "normalize_over"]


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
        d = x - F.mean(x, a, keepdims=True)
        inv_std = 1.0 / F.sqrt(F.mean(d * d, a, keepdims=True) + self.eps)
        return (g - F.mean(g, a, keepdims=True)
                - x_hat * F.mean(g * x_hat, a, keepdims=True)) * inv_std


def normalize_over(x: Tensor, axes: tuple[int, ...], eps: float) -> tuple[Tensor, Tensor, Tensor]:
    """(x - mean) / sqrt(var + eps) over ``axes`` (kept), returned with the batch mean and
    the biased batch variance (constants: they feed the running statistics)."""
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


def _channel_shape(x: Tensor) -> tuple[int, ...]:
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


def _affine(y: Tensor, weight: Tensor | None, bias: Tensor | None,
            shape: tuple[int, ...]) -> Tensor:
    if weight is not None:
        y = y * F.reshape(weight, shape)
    if bias is not None:
        y = y + F.reshape(bias, shape)
    return y


def _update_running(running: Tensor, batch_value: Any, momentum: float) -> None:
    """running <- (1 - momentum) running + momentum batch_value, on arrays (no graph)."""
    running.data = (1.0 - momentum) * running.data + momentum * batch_value.astype(
        running.dtype, copy=False)


def batch_norm(x: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
               weight: Tensor | None = None, bias: Tensor | None = None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Batch normalisation (Ioffe & Szegedy, 2015, Alg. 1) over every axis but the channel
    axis 1 of an (N, C, ...) input:

        y = (x - mu_B) / sqrt(sigma_B^2 + eps) * gamma + beta.

    In training mode mu_B and sigma_B^2 (biased) are the batch statistics, and the running
    statistics (when given) move towards the batch's, with the unbiased variance as PyTorch:

        running_mean <- (1 - momentum) running_mean + momentum mu_B
        running_var  <- (1 - momentum) running_var  + momentum sigma_B^2 * n / (n - 1).

    Otherwise the running statistics are used as constants.
    """
    if x.ndim < 2:
        raise ValueError(f"batch_norm needs an input of shape (N, C, ...), got {x.shape}")
    shape = _channel_shape(x)
    axes = (0,) + tuple(range(2, x.ndim))
    if training:
        n = x.size // x.shape[1]
        if n <= 1:
            raise ValueError(
                f"batch_norm in training mode needs more than 1 value per channel, got input "
                f"of shape {x.shape}"
            )
        y, mean, var = normalize_over(x, axes, eps)
        if running_mean is not None:
            _update_running(running_mean, mean.data.reshape(-1), momentum)
        if running_var is not None:
            _update_running(running_var, var.data.reshape(-1) * (n / (n - 1)), momentum)
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm in evaluation mode needs running_mean and running_var")
        mean = Tensor(running_mean.data.reshape(shape))
        std = Tensor(backend.get_array_module(running_var.data).sqrt(
            running_var.data.reshape(shape) + eps))
        y = (x - mean) / std
    return _affine(y, weight, bias, shape)


def instance_norm(x: Tensor, running_mean: Tensor | None = None,
                  running_var: Tensor | None = None, weight: Tensor | None = None,
                  bias: Tensor | None = None, use_input_stats: bool = True,
                  momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Instance normalisation (Ulyanov et al., 2016): each sample's each channel is normalised
    over its spatial axes, y = (x - mu_nc) / sqrt(sigma_nc^2 + eps) * gamma_c + beta_c.

    With running statistics and ``use_input_stats`` they are updated with the per-channel
    average over the batch of the instance statistics (unbiased variance), as PyTorch.
    """
    if x.ndim < 3:
        raise ValueError(f"instance_norm needs an input of shape (N, C, ...), got {x.shape}")
    shape = _channel_shape(x)
    if use_input_stats:
        axes = tuple(range(2, x.ndim))
        y, mean, var = normalize_over(x, axes, eps)
        n = x.size // (x.shape[0] * x.shape[1])
        if running_mean is not None:
            _update_running(running_mean, mean.data.reshape(x.shape[:2]).mean(0), momentum)
        if running_var is not None:
            unbiased = var.data.reshape(x.shape[:2]) * (n / max(n - 1, 1))
            _update_running(running_var, unbiased.mean(0), momentum)
    else:
        if running_mean is None or running_var is None:
            raise ValueError("instance_norm without input statistics needs running statistics")
        mean = Tensor(running_mean.data.reshape(shape))
        std = Tensor(backend.get_array_module(running_var.data).sqrt(
            running_var.data.reshape(shape) + eps))
        y = (x - mean) / std
    return _affine(y, weight, bias, shape)


def layer_norm(x: Tensor, normalized_shape: Sequence[int], weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Layer normalisation (Ba et al., 2016) over the trailing ``normalized_shape`` axes:
    y = (x - mu) / sqrt(sigma^2 + eps) * gamma + beta, gamma and beta of that shape."""
    normalized_shape = tuple(normalized_shape)
    k = len(normalized_shape)
    if tuple(x.shape[x.ndim - k:]) != normalized_shape:
        raise ValueError(
            f"layer_norm: input of shape {x.shape} does not end with normalized_shape "
            f"{normalized_shape}"
        )
    axes = tuple(range(x.ndim - k, x.ndim))
    y, _, _ = normalize_over(x, axes, eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def group_norm(x: Tensor, num_groups: int, weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Group normalisation (Wu & He, 2018): the C channels are split into ``num_groups``
    groups and each sample's each group is normalised over its channels and spatial axes;
    then a per-channel affine map."""
    n, c = x.shape[0], x.shape[1]
    if c % num_groups:
        raise ValueError(f"group_norm: {c} channels cannot be split into {num_groups} groups")
    g = F.reshape(x, (n, num_groups, (c // num_groups) * (x.size // max(n * c, 1))))
    y, _, _ = normalize_over(g, (2,), eps)
    y = F.reshape(y, x.shape)
    return _affine(y, weight, bias, _channel_shape(x))
