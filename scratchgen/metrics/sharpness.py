"""Sharpness of images: the variance of the Laplacian.

Blur is a low-pass filter; the Laplacian is a high-pass one, so a blurred image has a small
Laplacian everywhere and a sharp one large responses of both signs at its edges. The variance
of the response measures that (Pech-Pacheco, Cristobal, Chamorro-Martinez, Fernandez-Valdivia,
"Diatom autofocusing in brightfield microscopy: a comparative study", ICPR 2000; the usual
"variance of the Laplacian" focus measure, OpenCV's ``Laplacian`` with ``ksize=1``):

    L = x * [[0, 1, 0], [1, -4, 1], [0, 1, 0]]        (the 5-point discrete Laplacian)
    s(x) = Var[L] = mean((L - mean L)^2)               over the (H-2) x (W-2) valid pixels

of each image x (no padding, so image borders add nothing). ``laplacian_variance`` averages s
over a batch. For pix2pix it compares generated with real images: a regression-trained
generator's outputs score well below the real digits, the cGAN's closer to them.

Closed forms (the tests check them): a constant image and a linear ramp give 0; the 0/1
checkerboard gives L = -4 on its ones and +4 on its zeros, so s = 16; for a fixed image, any
blur that averages pixels lowers s.
"""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["laplacian", "laplacian_variance_per_image", "laplacian_variance", "LAPLACIAN"]

#: The 5-point discrete Laplacian kernel.
LAPLACIAN = np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def _images(images: Any) -> np.ndarray:
    x = np.asarray(images)
    if x.dtype.kind not in "fiu":
        raise ValueError(f"images must be numbers, got dtype {x.dtype}")
    if x.ndim not in (2, 3, 4) or x.shape[-1] < 3 or x.shape[-2] < 3:
        raise ValueError(f"images must be (H, W), (N, H, W) or (N, C, H, W) with H, W >= 3, "
                         f"got shape {x.shape}")
    return x.astype(np.float64)


def laplacian(images: Any) -> np.ndarray:
    """The Laplacian response (..., H-2, W-2) of images (..., H, W), valid pixels only:
    L[i, j] = x[i-1, j] + x[i+1, j] + x[i, j-1] + x[i, j+1] - 4 x[i, j]."""
    x = _images(images)
    c = x[..., 1:-1, 1:-1]
    return x[..., :-2, 1:-1] + x[..., 2:, 1:-1] + x[..., 1:-1, :-2] + x[..., 1:-1, 2:] - 4.0 * c


def laplacian_variance_per_image(images: Any) -> np.ndarray:
    """Var[L] of each image: shape (N,) for (N, C, H, W) or (N, H, W) (for C > 1 over all the
    channels' responses), a 0-d array for one (H, W) image."""
    lap = laplacian(images)
    if lap.ndim == 2:
        return np.asarray(lap.var())
    return lap.reshape(lap.shape[0], -1).var(axis=1)


def laplacian_variance(images: Any) -> float:
    """The mean over the images of Var[L] (the module docstring); images in one common range
    (e.g. [0, 1]), since s scales with the square of the contrast."""
    return float(np.mean(laplacian_variance_per_image(images)))
