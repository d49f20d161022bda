"""Sums over the batch and pixel axes, as normalisation layers and biases take them.

NumPy reduces axes (0, 2, 3) of a C-contiguous (N, C, H, W) array with an inner loop over one
(H, W) plane at a time, which is slow when the planes are small. Adding the N images first --
one long vector add over C*H*W numbers each -- and then each channel's plane gives the same
sum with other roundings. Measured on float32 batches of 64 images (2-core CPU): 0.26 against
0.024 ms for 256 x 4 x 4 channels, 0.18 against 0.06 for 128 x 8 x 8, 0.21 against 0.15 for
64 x 16 x 16.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from . import reference

__all__ = ["sum_axes"]


def sum_axes(x: Any, axes: tuple[int, ...], keepdims: bool = False) -> Any:
    """``x.sum(axis=axes, keepdims=keepdims)``; for a C-contiguous NumPy array that reduces axis
    0 and another but not every axis, the leading axis is summed first (see the module). Other
    arrays (CuPy's included) take their own ``sum``."""
    if reference.enabled():
        return x.sum(axis=axes, keepdims=keepdims)
    axes = tuple(sorted(a % x.ndim for a in axes)) if x.ndim else ()
    if (type(x) is not np.ndarray or len(axes) < 2 or len(axes) == x.ndim or axes[0] != 0
            or not x.flags.c_contiguous):
        return x.sum(axis=axes, keepdims=keepdims)
    y = x.sum(axis=0).sum(axis=tuple(a - 1 for a in axes[1:]))
    if keepdims:
        y = y.reshape(tuple(1 if i in axes else n for i, n in enumerate(x.shape)))
    return y
