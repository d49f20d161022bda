"""The elementwise activations and their derivatives as NumPy expressions:

    leaky ReLU  y = x if x > 0 else a x           gx = g if x > 0 else a g
    ReLU                                          gx = g if y > 0 else 0
    tanh                                          gx = g (1 - y^2)

(ReLU's and tanh's derivatives from their outputs ``y``). A NaN input takes the ``x <= 0``
branch.
"""
from __future__ import annotations

import numpy as np


def leaky_relu_forward(x, slope):
    a = x.dtype.type(slope)
    if 0.0 < slope <= 1.0:  # max(x, a x): one pass, and where() would branch per element
        return np.maximum(x, a * x)
    return np.where(x > 0, x, a * x)


def leaky_relu_derivative(x, slope, dtype=None):
    """1 where x > 0, else ``slope``: ``(1 - up) a + up`` with ``up = (x > 0)``, exactly 1 or a."""
    dtype = np.dtype(x.dtype if dtype is None else dtype)
    up = (x > 0).astype(dtype)
    return (1 - up) * dtype.type(slope) + up


def leaky_relu_backward(x, g, slope):
    return g * leaky_relu_derivative(x, slope, g.dtype)


def relu_backward(y, g):
    return g * (y > 0)


def tanh_backward(y, g):
    return g * (1 - y * y)
