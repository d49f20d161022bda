"""An unpaired translation task with a known answer: thin-stroke digits <-> thick-stroke digits.

Two domains are made from two *disjoint* halves of a digit set, so that no image of one domain
has its counterpart in the other (the task is unpaired, as CycleGAN's):

    A = erode(first half)       thin strokes
    B = dilate(second half)     thick strokes

Grey-scale erosion and dilation by a flat k x k square (``data.morphology``: the minimum and
the maximum over a k x k window) thin and thicken every white-on-black stroke by k - 1 pixels.
Both use the same window, so that both domains stay on one pixel grid: the translation to learn
changes the stroke width only, not the position.

Why k = 2 for MNIST: its strokes are 2 to 4 pixels wide, and a 3x3 erosion wipes out the
thinnest ones (of 2,000 MNIST test digits the shipped classifier reads 42% correctly after a
3x3 erosion, 71% after erosion by a 3x3 cross, 90% after the 2x2 one, 98% after a 2x2
dilation, 99% of the originals). The embedded 8x8 digits, resampled to 28x28, have blurred
strokes about 5 pixels wide and take k = 3 (of their 297 test digits, 95% and 92% are read
correctly after 3x3 erosion and dilation, 97% of the originals).

What the task measures (``recipes/cyclegan.py``): the labels ride along, unused in training;
a translation keeps the content when the shipped classifier still reads the right digit, and
it changes the style when ``stroke_mass`` (the mean ink per image) moves from the source
domain's value to the target domain's. Everything here is deterministic (no random numbers).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .morphology import dilate, erode

__all__ = ["erode", "dilate", "stroke_mass", "stroke_domains", "load_stroke_domains",
           "StrokeDomains", "DEFAULT_WINDOW"]

#: The window side k each data set uses (see the module docstring).
DEFAULT_WINDOW = {"mnist": 2, "digits": 3}


def stroke_mass(images: np.ndarray) -> np.ndarray:
    """The mean ink of each image, m(x) = (1 / CHW) sum_{c,i,j} x[c, i, j], for images in [0, 1]
    with white strokes on black: (N,) float64 for (N, ...) images."""
    x = np.asarray(images)
    if x.ndim < 3:
        raise ValueError(f"stroke_mass: needs a batch (N, [C,] H, W), got shape {x.shape}")
    return x.reshape(x.shape[0], -1).astype(np.float64).mean(axis=1)


class StrokeDomains(NamedTuple):
    """Domain A (thin: eroded first half) and domain B (thick: dilated second half), each with
    the labels of its images (for evaluation only)."""

    a: np.ndarray
    a_labels: np.ndarray
    b: np.ndarray
    b_labels: np.ndarray


def stroke_domains(images: np.ndarray, labels: np.ndarray, size: int = 2) -> StrokeDomains:
    """Split ``images`` (N, C, H, W) in [0, 1] in order into the first floor(N/2) and the rest;
    A = erode(first half), B = dilate(second half), with their labels."""
    x, y = np.asarray(images), np.asarray(labels)
    if x.ndim != 4 or len(x) < 2:
        raise ValueError(f"stroke_domains: needs at least 2 images (N, C, H, W), got shape "
                         f"{x.shape}")
    if y.shape != (len(x),):
        raise ValueError(f"stroke_domains: {len(x)} images but labels of shape {y.shape}")
    half = len(x) // 2
    return StrokeDomains(erode(x[:half], size), y[:half].copy(),
                         dilate(x[half:], size), y[half:].copy())


def load_stroke_domains(data: str = "digits", data_dir: str | None = None,
                        size: int | None = None) -> tuple[StrokeDomains, StrokeDomains]:
    """(train domains, test domains) of ``"digits"`` (embedded, 28x28) or ``"mnist"`` (from
    ``data_dir``), each split of the data set cut in halves by ``stroke_domains``; ``size`` is
    the window side (default ``DEFAULT_WINDOW[data]``). Images float32 (N, 1, 28, 28) in [0, 1]."""
    from scratchgen.data.images import load_image_arrays

    if data not in DEFAULT_WINDOW:
        raise ValueError(f"data must be one of {', '.join(DEFAULT_WINDOW)}, got {data!r}")
    k = DEFAULT_WINDOW[data] if size is None else size
    xtr, ytr, xte, yte = load_image_arrays(data, data_dir, 28)
    return (stroke_domains(xtr, ytr.astype(np.int64), k),
            stroke_domains(xte, yte.astype(np.int64), k))
