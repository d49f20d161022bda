"""Grey-scale erosion and dilation by a flat k x k square (Serra, "Image Analysis and
Mathematical Morphology", 1982): the minimum and the maximum over a k x k window,

    erode(x)[i, j]  = min_{(u, v) in W} x[i + u, j + v]
    dilate(x)[i, j] = max_{(u, v) in W} x[i + u, j + v]
    W = {-(k-1)//2, ..., k//2}^2         (k = 2: {0, 1}^2; k = 3: {-1, 0, 1}^2)

with the picture padded by background (0, or False for a binary image). On white-on-black
digits the minimum thins every stroke by k - 1 pixels and the maximum thickens it by as much.
Both use the same window (for even k the textbook dilation uses the mirrored one), so that an
eroded and a dilated image stay on one pixel grid. Used by the stroke-width domains
(``data.strokes``) and the digit outlines (``data.edges``).
"""
from __future__ import annotations

import numpy as np

__all__ = ["erode", "dilate"]


def _check(images: np.ndarray, size: int, what: str) -> np.ndarray:
    x = np.asarray(images)
    if x.ndim < 2:
        raise ValueError(f"{what}: needs images whose last two axes are (H, W), got shape "
                         f"{x.shape}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"{what}: size must be a positive integer, got {size!r}")
    return x


def _window_extreme(images: np.ndarray, size: int, reduce: str) -> np.ndarray:
    """min or max over the size x size window W of the module docstring, 0 outside."""
    lo, hi = -((size - 1) // 2), size // 2          # offsets u, v in W
    h, w = images.shape[-2:]
    pad = [(0, 0)] * (images.ndim - 2) + [(-lo, hi), (-lo, hi)]
    padded = np.pad(images, pad)                   # background outside the picture
    out = None
    for u in range(lo, hi + 1):
        for v in range(lo, hi + 1):
            shifted = padded[..., u - lo:u - lo + h, v - lo:v - lo + w]
            if out is None:
                out = shifted.copy()
            elif reduce == "min":
                np.minimum(out, shifted, out=out)
            else:
                np.maximum(out, shifted, out=out)
    return out


def erode(images: np.ndarray, size: int = 2) -> np.ndarray:
    """Grey-scale erosion: the minimum over each pixel's size x size window (thins bright
    strokes by size - 1 pixels). Works on the last two axes of any array; same shape and dtype."""
    return _window_extreme(_check(images, size, "erode"), int(size), "min")


def dilate(images: np.ndarray, size: int = 2) -> np.ndarray:
    """Grey-scale dilation: the maximum over each pixel's size x size window (the same window
    as ``erode``; thickens bright strokes by size - 1 pixels)."""
    return _window_extreme(_check(images, size, "dilate"), int(size), "max")
