"""Normalisation layers: ``F.normalize_over`` (one differentiable op) over the axes of each
kind, then a per-channel affine map; batch and instance norm with both gamma and beta take
the two as one op, ``F.normalize_affine``.

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

from scratchgen import backend
import scratchgen.functional as F
from scratchgen.autograd import Tensor
from scratchgen.functional.normalization import normalize_affine, normalize_over

__all__ = ["batch_norm", "layer_norm", "group_norm", "instance_norm", "normalize_over"]


def _channel_shape(x: Tensor) -> tuple[int, ...]:
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


def _affine(y: Tensor, weight: Tensor | None, bias: Tensor | None,
            shape: tuple[int, ...]) -> Tensor:
    if weight is not None:
        y = y * F.reshape(weight, shape)
    if bias is not None:
        y = y + F.reshape(bias, shape)
    return y


def _normalize(x: Tensor, weight: Tensor | None, bias: Tensor | None, axes: tuple[int, ...],
               eps: float) -> tuple[Tensor, Tensor, Tensor]:
    """The affine map of the normalised ``x`` with the batch statistics, and the statistics:
    one op (``F.normalize_affine``) when both per-channel ``weight`` and ``bias`` are given."""
    if weight is not None and bias is not None and weight.ndim == 1 and bias.ndim == 1:
        return normalize_affine(x, weight, bias, axes, eps)
    y, mean, var = normalize_over(x, axes, eps)
    return _affine(y, weight, bias, _channel_shape(x)), mean, var


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
        y, mean, var = _normalize(x, weight, bias, axes, eps)
        if running_mean is not None:
            _update_running(running_mean, mean.data.reshape(-1), momentum)
        if running_var is not None:
            _update_running(running_var, var.data.reshape(-1) * (n / (n - 1)), momentum)
        return y
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
        y, mean, var = _normalize(x, weight, bias, axes, eps)
        n = x.size // (x.shape[0] * x.shape[1])
        if running_mean is not None:
            _update_running(running_mean, mean.data.reshape(x.shape[:2]).mean(0), momentum)
        if running_var is not None:
            unbiased = var.data.reshape(x.shape[:2]) * (n / max(n - 1, 1))
            _update_running(running_var, unbiased.mean(0), momentum)
        return y
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
