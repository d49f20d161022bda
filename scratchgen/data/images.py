"""One call for the image sets the examples train on: the embedded digits or MNIST."""
from __future__ import annotations

import numpy as np

from .digits import Digits
from .mnist import MNIST

__all__ = ["load_image_arrays"]


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
