r"""The Adam update, the textbook way: its formulas as NumPy (or CuPy) expressions.

With gradient g, step t = 1, 2, ..., weight decay lambda and learning rate lr:

    g <- g + lambda theta                          (L2 weight decay: Adam's weight_decay)
    theta <- theta (1 - lr lambda)                 (decoupled weight decay: AdamW)
    m <- beta1 m + (1 - beta1) g
    v <- beta2 v + (1 - beta2) g^2
    v_max <- max(v_max, v), used in place of v     (amsgrad)
    theta <- theta - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

The parameter and the state arrays are updated in place; the gradient is only read.
"""
from __future__ import annotations

import math

from .. import _cuda


def adam_update(param, grad, exp_avg, exp_avg_sq, *, lr, beta1, beta2, eps, step,
                weight_decay=0.0, decoupled=False, max_exp_avg_sq=None):
    """One Adam (``decoupled``: AdamW) step of ``param`` at step ``step``, in place; with
    ``max_exp_avg_sq`` (amsgrad) that running maximum of v is updated and used instead of v."""
    xp = _cuda.get_array_module(param)
    g, m, v = grad, exp_avg, exp_avg_sq
    if weight_decay != 0:
        if decoupled:
            param *= 1.0 - lr * weight_decay
        else:
            g = g + weight_decay * param
    m *= beta1
    m += (1.0 - beta1) * g
    v *= beta2
    v += (1.0 - beta2) * (g * g)
    if max_exp_avg_sq is not None:
        max_exp_avg_sq[...] = xp.maximum(max_exp_avg_sq, v)
        v = max_exp_avg_sq
    bc1 = 1.0 - beta1 ** step
    bc2 = 1.0 - beta2 ** step
    denom = xp.sqrt(v) / math.sqrt(bc2) + eps
    param -= (lr / bc1) * (m / denom)
