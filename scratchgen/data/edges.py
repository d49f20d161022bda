"""The "sketch -> image" task: each digit paired with its outline, computed with NumPy alone.

Isola et al. (pix2pix, 2017, Sec. 4) translate edge maps into photos (edges2shoes,
edges2handbags: HED edges of the photos); here the photos are digits and the edges their
outlines, so that a model has to fill the strokes in, with the ink's grey levels, from a
sketch that does not hold them.

The outline is the outer morphological gradient (the "external gradient" of mathematical
morphology: Serra, "Image Analysis and Mathematical Morphology", 1982) of the binarised digit:

    B = [x >= threshold]                                 the ink, a binary image
    edges = dilate(B) AND NOT B,                         dilate(B)[i, j] = max of B over the
                                                         3 x 3 window centred at (i, j)

i.e. the pixels without ink that touch the ink (8-neighbourhood): a closed, one-pixel contour
around every stroke, with the stroke itself left empty. Pixels outside the image count as no
ink. The map is 0 / 1, float32, a deterministic function of the image.

That outline pins down where the ink is (only its grey levels are left to guess), so the
translation is nearly deterministic. ``scale=s`` makes a coarse sketch instead: the outline of
the image average-pooled by s x s, drawn back at full size (each pixel repeated s x s). The
exact position and width of the strokes within each s x s cell are then lost, and many digits
fit one sketch: the ambiguity under which regression blurs (``models.pix2pix``).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .morphology import dilate

__all__ = ["edge_map", "paired_edges"]


def _check_images(images: Any, what: str = "images") -> np.ndarray:
    x = np.asarray(images)
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"{what} must be grey images (N, 1, H, W), got shape {x.shape}")
    if x.dtype.kind not in "fiu":
        raise ValueError(f"{what} must be numbers, got dtype {x.dtype}")
    return x


def edge_map(images: Any, threshold: float = 0.5, scale: int = 1) -> np.ndarray:
    """Outlines of grey images (N, 1, H, W) in [0, 1]: dilate(B) AND NOT B with
    B = images >= ``threshold`` (the module docstring); float32 of the same shape, 0 or 1.
    ``scale`` s > 1: the outline of the s x s average-pooled images, each of its pixels
    repeated s x s (H and W must be divisible by s)."""
    x = _check_images(images)
    if not (isinstance(threshold, (int, float)) and 0.0 < threshold <= 1.0):
        raise ValueError(f"threshold must be in (0, 1], got {threshold!r}")
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    n, c, h, w = x.shape
    if h % scale or w % scale:
        raise ValueError(f"scale {scale} must divide the image sides, got shape {x.shape}")
    if scale > 1:
        x = x.reshape(n, c, h // scale, scale, w // scale, scale).mean(axis=(3, 5))
    ink = x >= threshold
    edges = (dilate(ink, 3) & ~ink).astype(np.float32)
    return edges.repeat(scale, axis=2).repeat(scale, axis=3) if scale > 1 else edges


def paired_edges(images: Any, threshold: float = 0.5, scale: int = 1
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(sources, targets) of the sketch -> image task: the outlines and the images themselves,
    both float32 (N, 1, H, W) in [0, 1]."""
    x = _check_images(images).astype(np.float32)
    return edge_map(x, threshold, scale), x
