"""Pictures drawn with Pillow: grids of images, written atomically as PNG."""
from __future__ import annotations

import os
import pathlib
import tempfile
from typing import Any

import numpy

from scratchgen import backend

__all__ = ["to_grid", "save_image_grid", "save_png"]


def _host(images: Any) -> numpy.ndarray:
    data = getattr(images, "data", images)
    return numpy.asarray(backend.to_device(data, "cpu"), dtype=numpy.float64)


def to_grid(images: Any, nrow: int = 8, padding: int = 2, value_range: tuple[float, float] | None = None,
            pad_value: float = 1.0, scale: int = 1) -> numpy.ndarray:
    """Tile a batch (N, C, H, W) or (N, H, W), C in {1, 3}, into one uint8 image (H', W', C).

    ``value_range`` (lo, hi) maps lo to black and hi to white (default: the batch's min and max);
    ``nrow`` images per row, as ``torchvision.utils.make_grid``; ``scale`` enlarges each pixel.
    """
    x = _host(images)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"to_grid takes (N, C, H, W) with C 1 or 3, or (N, H, W); got {x.shape}")
    lo, hi = value_range if value_range is not None else (float(x.min()), float(x.max()))
    x = numpy.clip((x - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    n, c, h, w = x.shape
    ncol = min(nrow, n)
    nrows = (n + ncol - 1) // ncol
    grid = numpy.full((c, nrows * (h + padding) + padding, ncol * (w + padding) + padding),
                      pad_value)
    for i in range(n):
        r, q = divmod(i, ncol)
        top, left = padding + r * (h + padding), padding + q * (w + padding)
        grid[:, top:top + h, left:left + w] = x[i]
    img = (grid.transpose(1, 2, 0) * 255.0 + 0.5).astype(numpy.uint8)
    if scale > 1:
        img = img.repeat(scale, axis=0).repeat(scale, axis=1)
    return img


def save_png(image: numpy.ndarray, path: str | os.PathLike) -> pathlib.Path:
    """Write an (H, W) or (H, W, C) uint8 array as PNG, atomically (temp file, then rename)."""
    from PIL import Image

    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            Image.fromarray(image).save(f, format="PNG")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def save_image_grid(images: Any, path: str | os.PathLike, nrow: int = 8, padding: int = 2,
                    value_range: tuple[float, float] | None = None, scale: int = 1) -> pathlib.Path:
    """``to_grid`` then ``save_png``."""
    return save_png(to_grid(images, nrow, padding, value_range, scale=scale), path)
