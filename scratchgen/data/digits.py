"""The embedded default dataset: UCI ML hand-written digits, 1797 images of 8x8, no download.

Source: UCI Machine Learning Repository, "Optical Recognition of Handwritten Digits",
E. Alpaydin and C. Kaynak (1998), DOI 10.24432/C50P49, licensed CC BY 4.0 (see
``scratchgen/data/embedded/README.md``). Each pixel counts the "on" pixels of a 4x4 block
of a 32x32 bitmap, so it takes the 17 values 0..16.
"""
from __future__ import annotations

import io
from importlib import resources

import numpy as np

from .dataset import ArrayDataset

__all__ = ["Digits", "load_digits_arrays", "DIGITS_TEST_SIZE"]

#: The test split is the last 297 images of the file; the train split the first 1500.
DIGITS_TEST_SIZE = 297

_cache: tuple[np.ndarray, np.ndarray] | None = None


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """All 1797 digits as stored: images ``(1797, 8, 8)`` uint8 in 0..16, labels ``(1797,)`` uint8.

    Read with ``importlib.resources``, so it works from an installed wheel or a zip. The
    returned arrays are copies; change them freely.
    """
    global _cache
    if _cache is None:
        blob = resources.files("scratchgen.data").joinpath("embedded/digits.npz").read_bytes()
        with np.load(io.BytesIO(blob)) as npz:
            _cache = (npz["images"], npz["labels"])
    return _cache[0].copy(), _cache[1].copy()


def _resize(images: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resampling of float32 ``(N, h, w)`` images to ``(N, size, size)`` with Pillow."""
    from PIL import Image

    bilinear = getattr(Image, "Resampling", Image).BILINEAR
    out = np.empty((images.shape[0], size, size), dtype=np.float32)
    for i, img in enumerate(images):
        out[i] = np.asarray(Image.fromarray(img).resize((size, size), bilinear))
    return out


class Digits(ArrayDataset):
    """UCI hand-written digits as float32 images in [0, 1], ready to train on with no download.

    Items are ``(image, label)``: ``image`` float32 ``(1, size, size)`` = pixel / 16, ``label``
    int64 in 0..9. ``.images`` ``(N, 1, size, size)`` and ``.labels`` ``(N,)`` hold the whole
    split. The split is fixed: the first 1500 images are ``train``, the last 297 ``test``
    (``train=None`` gives all 1797). Every class has between 27 and 33 test images.

    Args:
        train: ``True`` for the 1500 training images, ``False`` for the 297 test images,
            ``None`` for all of them.
        size: side of the returned images. 8 is the data as recorded; other sizes (e.g. 16 or
            28, to reuse MNIST-shaped networks) are resampled bilinearly with Pillow and clipped
            back to [0, 1].
    """

    classes: tuple[str, ...] = tuple(str(d) for d in range(10))

    def __init__(self, train: bool | None = True, size: int = 8) -> None:
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"Digits: size must be a positive integer, got {size!r}")
        images, labels = load_digits_arrays()
        if train is None:
            sl = slice(None)
        elif train:
            sl = slice(0, len(images) - DIGITS_TEST_SIZE)
        else:
            sl = slice(len(images) - DIGITS_TEST_SIZE, None)
        x = images[sl].astype(np.float32) / np.float32(16.0)
        if size != 8:
            x = np.clip(_resize(x, int(size)), 0.0, 1.0)
        self.train = train
        self.size = int(size)
        super().__init__(x[:, None, :, :], labels[sl].astype(np.int64))

    @property
    def images(self) -> np.ndarray:
        """All images of the split, ``(N, 1, size, size)`` float32 in [0, 1]."""
        return self.arrays[0]

    @property
    def labels(self) -> np.ndarray:
        """All labels of the split, ``(N,)`` int64."""
        return self.arrays[1]

    def __repr__(self) -> str:
        split = {True: "train", False: "test", None: "all"}[self.train]
        return f"Digits({split}, {len(self)} images of {self.size}x{self.size})"
