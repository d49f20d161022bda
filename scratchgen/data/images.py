"""One call for the image sets the examples train on: the embedded digits or MNIST."""
from __future__ import annotations

import numpy as np

from .digits import Digits
from .mnist import MNIST

__all__ = ["load_image_arrays", "image_shape"]


def load_image_arrays(data: str, data_dir: str | None = None, size: int = 28
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train images, train labels, test images, test labels); images float32 (N, 1, H, W) in
    [0, 1]. ``"digits"``: the embedded 8x8 digits resampled to ``size``; ``"mnist"``: MNIST
    from ``data_dir`` (or the cache folder, downloading when missing)."""
    if data == "mnist":
        kw = {"data_dir": data_dir} if data_dir else {}
        tr, te = MNIST(train=True, **kw), MNIST(train=False, **kw)
        return (tr.images.astype(np.float32) / 255.0, tr.labels,
                te.images.astype(np.float32) / 255.0, te.labels)
    if data == "digits":
        tr, te = Digits(train=True, size=size), Digits(train=False, size=size)
        return tr.images, tr.labels, te.images, te.labels
    raise ValueError(f"data must be 'digits' or 'mnist', got {data!r}")


def image_shape(data: str, size: int = 28) -> tuple[int, int, int]:
    """(C, H, W) of the images ``load_image_arrays(data, ..., size)`` gives, without loading
    them: (1, size, size) for the digits, (1, 28, 28) for MNIST."""
    if data == "mnist":
        return (1, 28, 28)
    if data == "digits":
        return (1, int(size), int(size))
    raise ValueError(f"data must be 'digits' or 'mnist', got {data!r}")
