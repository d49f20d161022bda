"""Textbook reference kernels, one page per kernel family, and the switch that runs them.

Each page computes the same functions as the fast kernels beside it, with the same names and
arguments, written the way a textbook writes them: the formula in the docstring, then the
fewest lines of NumPy that say it (a strided window view for im2col, a plain loop over the
kernel taps for col2im, a full softmax for attention). The fast kernels are tested equal to
them (``tests/kernels/test_reference.py``).

    activation.py  the leaky ReLU, ReLU and tanh derivatives as their formulas
    conv.py        convolution and transposed convolution: im2col, col2im, three products
    pool.py        max and average pooling
    attention.py   softmax(Q K^T / sqrt(d)) V and its backward
    norm.py        batch and instance norm with their affine map, and their backward
    pad.py         the four padding modes as one gather, and its scatter-add adjoint
    resample.py    nearest and bilinear resampling as (A_h X A_w^T)
    optim.py       the Adam / AdamW update as its formulas

The switch
----------
``SCRATCHGEN_REFERENCE=1`` in the environment (read when the kernels are imported), or
``use(True)`` in Python (``scratchgen.use_reference_kernels``), sends every public kernel
function to its page here -- the first line of each is ``if reference.enabled(): return
...`` -- and makes the autograd engine differentiate every op through its Tensor ``backward``
(the equations, written with ops) instead of its fused ``backward_arrays``. A reader can then
step from ``loss.backward()`` down to a col2im loop through readable code only. ``use`` also
works as a context manager, restoring the previous setting on exit::

    with kernels.reference.use():
        loss.backward()
"""
from __future__ import annotations

import os

from . import activation, attention, conv, norm, optim, pad, pool, resample

__all__ = ["enabled", "use", "activation", "attention", "conv", "norm", "optim", "pad", "pool",
           "resample"]

_enabled = os.environ.get("SCRATCHGEN_REFERENCE", "").strip().lower() not in ("", "0", "false")


def enabled() -> bool:
    """Whether the kernels run their reference versions."""
    return _enabled


class use:
    """``use(True)`` runs every kernel on its reference version from now on, ``use(False)``
    on the fast ones; as a context manager (``with use(): ...``) the previous setting comes
    back on exit."""

    def __init__(self, on: bool = True) -> None:
        global _enabled
        self.previous = _enabled
        _enabled = bool(on)

    def __enter__(self) -> "use":
        return self

    def __exit__(self, *exc_info) -> None:
        global _enabled
        _enabled = self.previous
