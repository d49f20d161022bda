"""Normalisation over the axes S with a per-channel affine map (batch norm: S = (N, H, W);
instance norm: S = (H, W)), line by line as the formulas (gamma and beta None: 1 and 0):

    m = mean_S(x),   v = mean_S((x - m)^2),   r = 1 / sqrt(v + eps)
    x_hat = (x - m) r,   y = gamma x_hat + beta

    g_beta = sum_{not C}(g),   g_gamma = sum_{not C}(g x_hat)
    g_x = gamma r (g - mean_S(g) - x_hat mean_S(g x_hat))
"""
from __future__ import annotations


def _channel(a, ndim: int, default: float = 1.0):
    return default if a is None else a.reshape((1, -1) + (1,) * (ndim - 2))


def normalize_affine_forward(x, gamma, beta, axes, eps):
    """``(y, centred, mean, var, inv_std)`` with ``centred = x - m``; the statistics keep
    the reduced axes."""
    mean = x.mean(axis=axes, keepdims=True)
    centred = x - mean
    var = (centred ** 2).mean(axis=axes, keepdims=True)
    inv_std = (1.0 / (var + eps) ** 0.5).astype(x.dtype, copy=False)
    x_hat = centred * inv_std
    y = _channel(gamma, x.ndim) * x_hat + _channel(beta, x.ndim, 0.0)
    return y, centred, mean, var, inv_std


def normalize_affine_backward(g, centred, gamma, inv_std, axes, needs):
    """``(g_x, g_gamma, g_beta)``, None where ``needs`` says it is not wanted."""
    x_hat = centred * inv_std
    not_channel = tuple(a for a in range(g.ndim) if a != 1)
    g_gamma = (g * x_hat).sum(axis=not_channel) if needs[1] else None
    g_beta = g.sum(axis=not_channel) if needs[2] else None
    g_x = None
    if needs[0]:
        g_x = _channel(gamma, g.ndim) * inv_std * (
            g - g.mean(axis=axes, keepdims=True)
            - x_hat * (g * x_hat).mean(axis=axes, keepdims=True))
    return g_x, g_gamma, g_beta
